package persistence

import (
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/cockroachdb/pebble/v2"

	"github.com/mtad/mtad/messages"
)

// bodyChunkSize is the size of every body chunk but the last. It bounds
// what a BodyWriter buffers and what a BodyReader holds, and keeps each
// value far below Pebble's large-batch threshold (half the memtable).
const bodyChunkSize = 256 << 10

// BodyWriter streams the body of one message into the journal: Write
// buffers up to one chunk and commits each full chunk in a batch of its
// own, without a sync, so a message of any size costs one chunk of memory
// here. The body is not part of the journal until AcceptBody commits its
// last chunk together with the envelope; until then a crash leaves an
// orphan, which the next Open deletes (see pendingKey).
//
// Who may call what: one goroutine owns a BodyWriter. It calls Write any
// number of times, then either AcceptBody once, or Abort. Abort after a
// successful AcceptBody does nothing, so a deferred Abort is safe.
type BodyWriter struct {
	j      *Journal
	id     messages.MsgID
	buf    []byte // the chunk being filled, at most bodyChunkSize bytes
	next   uint32 // index of the chunk in buf
	size   int64  // bytes written so far
	marked bool   // the pending record is written
	done   bool   // accepted or aborted
	err    error  // the first error of a chunk commit; sticky
}

// NewBody starts the body of message id, which should come from NextID.
// Nothing is written before the first chunk is full.
func (j *Journal) NewBody(id messages.MsgID) *BodyWriter {
	return &BodyWriter{j: j, id: id}
}

// Size returns the number of bytes written so far.
func (w *BodyWriter) Size() int64 { return w.size }

// Write appends p to the body. It commits a chunk, without a sync,
// whenever one is full and more bytes follow; it blocks on disk then. Once
// it has failed, every later Write and AcceptBody fails with the same
// error, and the caller should Abort.
func (w *BodyWriter) Write(p []byte) (int, error) {
	if w.done {
		return 0, fmt.Errorf("persistence: body of %v: write after accept or abort", w.id)
	}
	n := 0
	for n < len(p) {
		if w.err != nil {
			return n, w.err
		}
		if len(w.buf) == bodyChunkSize {
			w.err = w.commitChunk()
			continue
		}
		k := min(len(p)-n, bodyChunkSize-len(w.buf))
		w.buf = appendBounded(w.buf, p[n:n+k])
		n += k
		w.size += int64(k)
	}
	return n, nil
}

// appendBounded appends p to buf, growing buf to at most bodyChunkSize.
// REQUIRES: len(buf)+len(p) <= bodyChunkSize.
func appendBounded(buf, p []byte) []byte {
	if need := len(buf) + len(p); need > cap(buf) {
		old := buf
		buf = append(chunkBuf(min(bodyChunkSize, max(need, 2*cap(buf)))), buf...)
		releaseChunk(old)
	}
	return append(buf, p...)
}

// Buffers for bodies come from pools by capacity, from minBuf doubling up
// to bodyChunkSize, so that neither a stream of small messages nor large
// bodies streaming in and out allocate a buffer each time.
const minBuf = 4 << 10

var bufPools [7]sync.Pool // capacities minBuf << i; minBuf<<6 == bodyChunkSize

// poolIndex is the pool of buffers of capacity c, or -1.
func poolIndex(c int) int {
	for i := range bufPools {
		if c == minBuf<<i {
			return i
		}
	}
	return -1
}

// chunkBuf returns an empty buffer of at least size bytes (at most
// bodyChunkSize), pooled.
func chunkBuf(size int) []byte {
	c := minBuf
	for c < size {
		c <<= 1
	}
	if b, ok := bufPools[poolIndex(c)].Get().(*[]byte); ok {
		return (*b)[:0]
	}
	return make([]byte, 0, c)
}

// releaseChunk gives a pooled buffer back; others are left to the GC.
func releaseChunk(b []byte) {
	if i := poolIndex(cap(b)); i >= 0 {
		b = b[:0]
		bufPools[i].Put(&b)
	}
}

// commitChunk commits the full chunk in buf, and with the first one the
// pending record that lets Open find an orphan.
func (w *BodyWriter) commitChunk() error {
	j := w.j
	j.mu.RLock()
	defer j.mu.RUnlock()
	if j.closed {
		return ErrClosed
	}
	b := j.db.NewBatch()
	defer b.Close()
	if !w.marked {
		if err := j.ensureID(w.id); err != nil {
			return err
		}
		_ = b.Set(pendingKey(w.id), nil, nil)
	}
	_ = b.Set(chunkKey(w.id, w.next), w.buf, nil)
	if err := b.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("persistence: body of %v, chunk %d: %w", w.id, w.next, err)
	}
	w.marked = true
	w.next++
	w.buf = w.buf[:0]
	return nil
}

// AcceptBody journals message env with the body written to w: the last
// chunk, the envelope and the recipients in one synced batch. When it
// returns nil the message, its whole body included, survives a crash:
// w's earlier chunks were committed before this batch, and a synced commit
// makes every batch before it durable too. Pebble writes batches to the
// WAL in commit (sequence number) order, one log at a time (commitPipeline
// in commit.go: "Batches need to be written to the WAL in sequence number
// order"); a sync flushes and fsyncs the log up to the synced record, so
// everything before it in that log (LogWriter.flushLoop and
// syncWithLatency, record/log_writer.go); and a log is closed, which syncs
// it, before the next one is used (DB.rotateWAL in db.go: "Close the
// previous log first. This writes an EOF trailer ... and syncs it to
// disk"). Replay stops at the first bad record, so no later record
// survives without the earlier ones.
//
// env.ID must be the id given to NewBody; env.Size is the caller's (see
// Size). As with Accept, do not retry a failed AcceptBody: Abort w.
func (j *Journal) AcceptBody(env *messages.Envelope, w *BodyWriter) error {
	if err := checkEnvelope(env); err != nil {
		return err
	}
	switch {
	case w.j != j || w.id != env.ID:
		return fmt.Errorf("persistence: accept %v: body written for %v", env.ID, w.id)
	case w.done:
		return fmt.Errorf("persistence: accept %v: body already accepted or aborted", env.ID)
	case w.err != nil:
		return w.err
	}
	env.Size = w.Size() // the journaled size is the body's, which FinishSized relies on
	err := j.accept(env, func(b *pebble.Batch) {
		_ = b.Set(chunkKey(env.ID, w.next), w.buf, nil)
		if w.marked {
			_ = b.SingleDelete(pendingKey(env.ID), nil)
		}
	})
	if err != nil {
		return err
	}
	w.done = true
	if w.next == 0 { // the whole body was in buf
		j.fresh.put(env.ID, w.buf)
	}
	releaseChunk(w.buf)
	w.buf = nil
	return nil
}

// Abort deletes the chunks w committed, for a message that is refused. It
// does not sync: should the deletion be lost, the next Open finds the
// orphan again. A failure is logged, not returned, for the same reason.
// Abort after AcceptBody succeeded, or a second Abort, does nothing.
func (w *BodyWriter) Abort() {
	if w.done {
		return
	}
	w.done = true
	releaseChunk(w.buf)
	w.buf = nil
	if !w.marked {
		return
	}
	if err := w.j.abortBody(w.id, w.next); err != nil {
		w.j.log.Warn("persistence: abort body; the next Open removes it", "msgid", w.id.String(), "err", err)
	}
}

func (j *Journal) abortBody(id messages.MsgID, chunks uint32) error {
	j.mu.RLock()
	defer j.mu.RUnlock()
	if j.closed {
		return ErrClosed
	}
	b := j.db.NewBatch()
	defer b.Close()
	for i := range chunks {
		_ = b.SingleDelete(chunkKey(id, i), nil)
	}
	_ = b.SingleDelete(pendingKey(id), nil)
	return b.Commit(pebble.NoSync)
}

// setBody adds body to b as chunks.
func setBody(b *pebble.Batch, id messages.MsgID, body []byte) {
	var chunk uint32
	for len(body) > bodyChunkSize {
		_ = b.Set(chunkKey(id, chunk), body[:bodyChunkSize], nil)
		body = body[bodyChunkSize:]
		chunk++
	}
	_ = b.Set(chunkKey(id, chunk), body, nil)
}

// deleteBody adds to b a SingleDelete of every body record of message id,
// chunks or the old single record: each was written once. A DeleteRange
// would need no scan, but would leave one range tombstone per message in
// every level down to the bottom, where a SingleDelete meets its SET in
// the memtable or the first compaction and both vanish. REQUIRES: j.mu
// held for reading.
func (j *Journal) deleteBody(b *pebble.Batch, id messages.MsgID) error {
	it, err := j.db.NewIter(&pebble.IterOptions{LowerBound: bodyLower(id), UpperBound: bodyUpper(id)})
	if err != nil {
		return err
	}
	for it.First(); it.Valid(); it.Next() {
		_ = b.SingleDelete(it.Key(), nil) // the batch copies the key
	}
	return it.Close()
}

// deleteBodySized deletes the body of a message of size bytes without
// reading: its chunks are those Accept and AcceptBody wrote for that size
// (AcceptBody sets Size; every Accept caller gives the body's length).
// Only for ids from chunkedFrom on: no other key can hold their body, and
// a SingleDelete of a key never written would be reported by Pebble as an
// ineffectual single delete.
func deleteBodySized(b *pebble.Batch, id messages.MsgID, size int64) {
	n := (size + bodyChunkSize - 1) / bodyChunkSize
	for i := range max(n, 1) {
		_ = b.SingleDelete(chunkKey(id, uint32(i)), nil)
	}
}

// removeOrphans deletes the bodies that a BodyWriter started but neither
// AcceptBody nor Abort finished: a crash or a lost Abort left them, with
// their pending record. REQUIRES: called by Open before j is shared.
func (j *Journal) removeOrphans() error {
	lo, hi := prefixBounds(prefixPending)
	it, err := j.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return fmt.Errorf("persistence: scan pending bodies: %w", err)
	}
	b := j.db.NewBatch()
	defer b.Close()
	n := 0
	for it.First(); it.Valid(); it.Next() {
		id, perr := parseIDKey(it.Key())
		if perr != nil {
			err = corrupt(it.Key(), perr)
			break
		}
		if err = j.removeOrphan(b, id); err != nil {
			break
		}
		n++
	}
	if err = errors.Join(err, it.Close()); err != nil || n == 0 {
		return err
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("persistence: remove unfinished bodies: %w", err)
	}
	j.log.Info("persistence: removed bodies of messages never accepted", "count", n)
	return nil
}

// removeOrphan adds to b the deletion of message id's pending record and,
// unless the message was accepted after all, of its body.
func (j *Journal) removeOrphan(b *pebble.Batch, id messages.MsgID) error {
	_ = b.SingleDelete(pendingKey(id), nil)
	_, err := j.get(envelopeKey(id))
	if err == nil {
		return nil // cannot happen: AcceptBody deletes the pending record
	}
	if !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("persistence: orphan %v: %w", id, err)
	}
	return j.deleteBody(b, id)
}

// BodyReader reads one message body from the journal, a chunk at a time:
// it holds one chunk in memory, never the whole body (except a body in the
// old single-record form, which is its own one chunk). Each chunk is read
// under the journal's read lock, so a Close of the Journal waits for the
// chunk being read and a later Read fails with ErrClosed; nothing is held
// between reads. A chunk that is missing or of the wrong size is an error,
// never an early io.EOF: a reader that returned io.EOF has returned
// exactly Size bytes. One goroutine owns a BodyReader.
type BodyReader struct {
	j      *Journal
	id     messages.MsgID
	size   int64
	chunks uint32 // chunk keys, or 1 for the old single record
	legacy bool
	next   uint32 // the chunk to load next
	read   int64  // bytes returned so far
	buf    []byte // the loaded chunk; buf[off:] is still to return
	off    int
	mem    []byte // the whole body, from the fresh bodies; mem[off:] is still to return
}

// OpenBody opens the body of message id for reading, or returns an error
// wrapping ErrNotFound. It reads the keys of the body's chunks and their
// lengths (not the values) to learn its size.
func (j *Journal) OpenBody(id messages.MsgID) (*BodyReader, error) {
	j.mu.RLock()
	defer j.mu.RUnlock()
	if j.closed {
		return nil, ErrClosed
	}
	if body, ok := j.fresh.get(id); ok {
		return &BodyReader{j: j, id: id, size: int64(len(body)), mem: body}, nil
	}
	r := &BodyReader{j: j, id: id}
	if err := r.scan(); err != nil {
		return nil, fmt.Errorf("persistence: body of %v: %w", id, err)
	}
	return r, nil
}

// scan counts the body's chunks and sums their lengths. REQUIRES: j.mu
// held for reading.
func (r *BodyReader) scan() error {
	it, err := r.j.db.NewIter(&pebble.IterOptions{LowerBound: bodyLower(r.id), UpperBound: bodyUpper(r.id)})
	if err != nil {
		return err
	}
	for it.First(); it.Valid() && err == nil; it.Next() {
		v := it.LazyValue()
		err = r.count(it.Key(), v.Len())
	}
	if err = errors.Join(err, it.Error(), it.Close()); err != nil {
		return err
	}
	if r.chunks == 0 {
		return ErrNotFound
	}
	return nil
}

func (r *BodyReader) count(key []byte, n int) error {
	_, chunk, legacy, err := parseBodyKey(key)
	switch {
	case err != nil:
		return corrupt(key, err)
	case r.legacy || (legacy && r.chunks > 0):
		return corrupt(key, errors.New("body in both the old and the chunked form"))
	case !legacy && chunk != r.chunks:
		return corrupt(key, fmt.Errorf("chunk %d follows %d chunks", chunk, r.chunks))
	}
	r.legacy = legacy
	r.chunks++
	r.size += int64(n)
	return nil
}

// Size returns the size of the body in bytes.
func (r *BodyReader) Size() int64 { return r.size }

// Read reads the body; see BodyReader for its guarantees.
func (r *BodyReader) Read(p []byte) (int, error) {
	if r.mem != nil {
		if r.off == len(r.mem) {
			return 0, io.EOF
		}
		n := copy(p, r.mem[r.off:])
		r.off += n
		r.read += int64(n)
		return n, nil
	}
	for r.off == len(r.buf) {
		if r.next == r.chunks {
			return 0, io.EOF
		}
		if err := r.load(); err != nil {
			return 0, err
		}
	}
	n := copy(p, r.buf[r.off:])
	r.off += n
	r.read += int64(n)
	return n, nil
}

// load reads the next chunk into buf, under the journal's read lock.
func (r *BodyReader) load() error {
	key := chunkKey(r.id, r.next)
	if r.legacy {
		key = legacyBodyKey(r.id)
	}
	j := r.j
	j.mu.RLock()
	defer j.mu.RUnlock()
	if j.closed {
		return ErrClosed
	}
	v, closer, err := j.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		err = ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("persistence: body of %v, chunk %d of %d: %w", r.id, r.next, r.chunks, err)
	}
	if cap(r.buf) < len(v) {
		releaseChunk(r.buf)
		r.buf = chunkBuf(len(v))
	}
	r.buf = append(r.buf[:0], v...)
	r.off = 0
	r.next++
	if err := closer.Close(); err != nil {
		return err
	}
	last := r.next == r.chunks
	if got := r.read + int64(len(r.buf)); got > r.size || (last && got != r.size) {
		return corrupt(key, fmt.Errorf("chunk of %d bytes makes the body %d bytes, not %d", len(r.buf), got, r.size))
	}
	return nil
}

// Close releases the chunk buffer; it never fails. Read after Close
// returns io.EOF.
func (r *BodyReader) Close() error {
	releaseChunk(r.buf)
	r.buf, r.off, r.next = nil, 0, r.chunks
	if r.mem != nil {
		r.mem, r.off = []byte{}, 0 // Read returns io.EOF
	}
	return nil
}

// Body returns a copy of the whole body of message id, or an error
// wrapping ErrNotFound. It holds the whole body in memory: delivery uses
// OpenBody.
func (j *Journal) Body(id messages.MsgID) ([]byte, error) {
	return j.BodyPrefix(id, -1)
}

// BodyPrefix returns a copy of the first n bytes of the body of message id
// (all of it when it is shorter, or when n < 0), reading no chunk beyond
// them: what a DSN that returns a bounded part of the original needs.
func (j *Journal) BodyPrefix(id messages.MsgID, n int64) ([]byte, error) {
	r, err := j.OpenBody(id)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	if n < 0 || n > r.Size() {
		n = r.Size()
	}
	out := make([]byte, n)
	if _, err := io.ReadFull(r, out); err != nil {
		return nil, err
	}
	return out, nil
}
