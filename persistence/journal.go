package persistence

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/mtad/mtad/messages"
	"github.com/mtad/mtad/metrics"
)

// pebbleFormat is the on-disk format the journal is written in. Pebble
// ratchets an older store up to it on Open and never down; raise it
// deliberately, never by following pebble.FormatNewest.
const pebbleFormat = pebble.FormatValueSeparation

// DefaultMemTableSize is the MemTableSize used when Options leaves it zero:
// large enough that a message delivered within minutes is deleted while
// still in the memtable, so its body is written to the WAL and nowhere else.
const DefaultMemTableSize = 64 << 20

// Errors.
var (
	ErrNotFound = errors.New("persistence: message not found")
	ErrClosed   = errors.New("persistence: journal closed")
)

// Options tune a Journal. The zero value is ready to use.
type Options struct {
	// Logger receives Pebble's errors and events (write stalls, slow
	// disks) at Warn and Error, and its housekeeping lines at Debug. Nil
	// discards them.
	Logger *slog.Logger

	// MemTableSize is the size of Pebble's memtable, in bytes; zero means
	// DefaultMemTableSize. Up to four memtables may be held in memory.
	MemTableSize uint64

	// separateFrom overrides the smallest body chunk that value
	// separation moves into a blob file (tests and measurements); zero
	// means separateBodiesFrom, negative turns value separation off.
	separateFrom int
}

func (o Options) pebbleOptions(log *slog.Logger, misuse *atomic.Int64) *pebble.Options {
	size := o.MemTableSize
	if size == 0 {
		size = DefaultMemTableSize
	}
	opts := &pebble.Options{
		FormatMajorVersion:          pebbleFormat,
		MemTableSize:                size,
		MemTableStopWritesThreshold: 4,
		CompactionConcurrencyRange: func() (int, int) {
			return 1, min(4, runtime.NumCPU())
		},
		Logger:        pebbleLogger{log: log},
		EventListener: eventListener(log, misuse),
	}
	from := o.separateFrom
	if from == 0 {
		from = separateBodiesFrom
	}
	if from > 0 {
		policy := bodySeparation(from)
		opts.Experimental.ValueSeparationPolicy = func() pebble.ValueSeparationPolicy { return policy }
		opts.Experimental.SpanPolicyFunc = bodiesOnlySpanPolicy
	}
	return opts
}

// Journal is the durable store of accepted messages. See the package
// documentation for what each method promises.
type Journal struct {
	db   *pebble.DB
	lock *dirLock
	log  *slog.Logger

	// mu guards closed. Every method that uses db holds it for reading,
	// so Close waits for calls in flight and later calls get ErrClosed
	// instead of a Pebble panic. Lock order: mu, then ids.mu.
	mu     sync.RWMutex
	closed bool

	ids idAllocator

	fresh freshBodies // copies of small bodies just written (fresh.go)

	// chunkedFrom is the first id whose body is surely chunked (see
	// metaChunked); FinishSized reads the body keys of older ids.
	chunkedFrom messages.MsgID

	misuse *atomic.Int64 // Pebble's PossibleAPIMisuse events, for tests
}

// Open opens the journal in dir, creating dir if it is missing. It fails
// with an error wrapping ErrLocked while another Journal, in this process
// or another, has dir open.
func Open(dir string, opts Options) (*Journal, error) {
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("persistence: create data directory: %w", err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = discardLogger()
	}
	misuse := new(atomic.Int64)
	db, err := pebble.Open(dir, opts.pebbleOptions(log, misuse))
	if err != nil {
		lock.release()
		return nil, fmt.Errorf("persistence: open %s: %w", dir, err)
	}
	j := &Journal{db: db, lock: lock, log: log, misuse: misuse}
	if err := j.recoverIDs(); err != nil {
		return nil, errors.Join(err, db.Close(), lock.release())
	}
	if err := j.recoverChunked(); err != nil {
		return nil, errors.Join(err, db.Close(), lock.release())
	}
	if err := j.removeOrphans(); err != nil {
		return nil, errors.Join(err, db.Close(), lock.release())
	}
	return j, nil
}

// Close flushes the memtable, closes Pebble and releases the data
// directory. It waits for calls in flight; calls after it return
// ErrClosed (NextID, which returns no error, logs one when it needs to
// reserve ids). Closing twice is a no-op.
func (j *Journal) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return nil
	}
	j.closed = true
	j.fresh.reset()
	var errs []error
	if err := j.db.Flush(); err != nil {
		errs = append(errs, fmt.Errorf("persistence: flush: %w", err))
	}
	if err := j.db.Close(); err != nil {
		errs = append(errs, fmt.Errorf("persistence: close: %w", err))
	}
	if err := j.lock.release(); err != nil {
		errs = append(errs, fmt.Errorf("persistence: unlock: %w", err))
	}
	return errors.Join(errs...)
}

// Accept journals a new message: its body, its envelope and the state of
// each of its recipients, in one synced batch. It is for bodies already in
// memory (DSNs, reports, tests); a message arriving over the network
// streams in through NewBody and AcceptBody. When it returns nil the
// message survives a crash. env.ID should come from NextID and be accepted
// once: do not retry a failed Accept with the same id. env.Rcpts[i].Index
// must be i.
func (j *Journal) Accept(env *messages.Envelope, body []byte) error {
	if err := checkEnvelope(env); err != nil {
		return err
	}
	if err := j.accept(env, func(b *pebble.Batch) { setBody(b, env.ID, body) }); err != nil {
		return err
	}
	j.fresh.put(env.ID, body)
	return nil
}

// accept writes what body adds to the batch (the body, or its last chunk),
// env and its recipients in one synced batch. REQUIRES: checkEnvelope(env).
func (j *Journal) accept(env *messages.Envelope, body func(*pebble.Batch)) error {
	j.mu.RLock()
	defer j.mu.RUnlock()
	if j.closed {
		return ErrClosed
	}
	if err := j.ensureID(env.ID); err != nil {
		return err
	}
	b := j.db.NewBatch()
	defer b.Close()
	// A batch without an index never fails a Set; the errors are ignored.
	body(b)
	_ = b.Set(envelopeKey(env.ID), appendEnvelope(nil, env), nil)
	setRcpts(b, env.ID, env.Rcpts)
	return commit(b, "accept", env.ID)
}

// Update rewrites the records of the given recipients of message id, each
// keyed by its Index, in one synced batch; each record is the whole
// Recipient, so pass complete values. When it returns nil the new state
// survives a crash. It returns an error wrapping ErrNotFound if the
// message is not in the journal.
func (j *Journal) Update(id messages.MsgID, rcpts []messages.Recipient) error {
	return j.update(id, rcpts, "update", pebble.Sync)
}

// Defer is Update without a sync: when it returns, the new state is what
// every read of the journal sees, but a crash (of the process too: Pebble
// writes unsynced batches to its WAL in the background) may take it back
// until the next synced write of any message, which makes it durable with
// itself. The batch stays atomic: after a crash the recipients have their
// old states or their new ones. Defer is for states whose loss costs a
// repeat and nothing else: recipients deferred again, whose attempt
// count, next attempt time and last reply, lost, have them tried again
// sooner. Never use it for a final state, a move to another queue, or a
// state a notice was sent for.
func (j *Journal) Defer(id messages.MsgID, rcpts []messages.Recipient) error {
	return j.update(id, rcpts, "defer", pebble.NoSync)
}

func (j *Journal) update(id messages.MsgID, rcpts []messages.Recipient, op string, sync *pebble.WriteOptions) error {
	j.mu.RLock()
	defer j.mu.RUnlock()
	if j.closed {
		return ErrClosed
	}
	n, err := j.rcptCount(id)
	if err != nil {
		return err
	}
	for i := range rcpts {
		if err := checkRcpt(&rcpts[i], n); err != nil {
			return fmt.Errorf("persistence: update %v: %w", id, err)
		}
	}
	if len(rcpts) == 0 {
		return nil
	}
	b := j.db.NewBatch()
	defer b.Close()
	setRcpts(b, id, rcpts)
	return commitWith(b, op, id, sync)
}

// Finish deletes message id (every chunk of its body, its envelope and its
// nrcpts recipient records) in one synced batch. nrcpts must be the message's recipient
// count. It returns an error wrapping ErrNotFound if the message is not in
// the journal.
func (j *Journal) Finish(id messages.MsgID, nrcpts int) error {
	j.mu.RLock()
	defer j.mu.RUnlock()
	if j.closed {
		return ErrClosed
	}
	n, err := j.rcptCount(id)
	if err != nil {
		return err
	}
	if n != nrcpts {
		return fmt.Errorf("persistence: finish %v: %d recipients given, %d journaled", id, nrcpts, n)
	}
	return j.finish(id, n, -1)
}

// FinishSized is Finish for a message whose envelope the caller read
// from the journal: nrcpts and size are its recipient count and Size. It
// reads nothing (Finish reads the envelope and scans the body's keys), so
// the delivery path's last write is a blind batch.
func (j *Journal) FinishSized(id messages.MsgID, nrcpts int, size int64) error {
	j.mu.RLock()
	defer j.mu.RUnlock()
	if j.closed {
		return ErrClosed
	}
	if id < j.chunkedFrom {
		size = -1 // from before chunking: its body may be in the old form
	}
	return j.finish(id, nrcpts, size)
}

// finish deletes message id in one synced batch: its body's chunks for
// size bytes, or, with size < 0, whatever body keys a scan finds.
// Body chunks and envelope are written once and deleted once, so a
// SingleDelete removes them with their SET at the next flush. Recipient
// records are rewritten by Update and need a real Delete.
// REQUIRES: j.mu held for reading, j not closed.
func (j *Journal) finish(id messages.MsgID, nrcpts int, size int64) error {
	b := j.db.NewBatch()
	defer b.Close()
	if size >= 0 {
		deleteBodySized(b, id, size)
	} else if err := j.deleteBody(b, id); err != nil {
		return fmt.Errorf("persistence: finish %v: %w", id, err)
	}
	_ = b.SingleDelete(envelopeKey(id), nil)
	for i := range nrcpts {
		_ = b.Delete(rcptKey(id, uint32(i)), nil)
	}
	j.fresh.drop(id)
	return commit(b, "finish", id)
}

// Stats returns the number of messages in the journal. It scans every
// envelope record, so it is for tools and tests, not for a hot path.
func (j *Journal) Stats() (n int, err error) {
	j.mu.RLock()
	defer j.mu.RUnlock()
	if j.closed {
		return 0, ErrClosed
	}
	lo, hi := prefixBounds(prefixEnvelope)
	it, err := j.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return 0, fmt.Errorf("persistence: stats: %w", err)
	}
	for it.First(); it.Valid(); it.Next() {
		n++
	}
	if err := it.Close(); err != nil {
		return 0, fmt.Errorf("persistence: stats: %w", err)
	}
	return n, nil
}

// rcptCount returns the recipient count of message id from its envelope
// record. REQUIRES: j.mu held for reading.
func (j *Journal) rcptCount(id messages.MsgID) (int, error) {
	key := envelopeKey(id)
	v, err := j.get(key)
	if err != nil {
		return 0, fmt.Errorf("persistence: message %v: %w", id, err)
	}
	_, n, err := decodeEnvelope(id, v)
	if err != nil {
		return 0, corrupt(key, err)
	}
	return n, nil
}

// get returns a copy of the value of key, or ErrNotFound. REQUIRES: j.mu
// held for reading.
func (j *Journal) get(key []byte) ([]byte, error) {
	v, closer, err := j.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	defer closer.Close()
	return append([]byte(nil), v...), nil
}

func setRcpts(b *pebble.Batch, id messages.MsgID, rcpts []messages.Recipient) {
	var buf []byte
	for i := range rcpts {
		buf = appendRecipient(buf[:0], &rcpts[i])
		_ = b.Set(rcptKey(id, rcpts[i].Index), buf, nil)
	}
}

// commit commits b with a WAL sync. Pebble's commit pipeline lets
// concurrent committers share one fsync, so callers on many goroutines
// get group commit without any queue of ours.
func commit(b *pebble.Batch, op string, id messages.MsgID) error {
	return commitWith(b, op, id, pebble.Sync)
}

// commitWith commits b with the given sync option, observed as op.
func commitWith(b *pebble.Batch, op string, id messages.MsgID, sync *pebble.WriteOptions) error {
	start := time.Now()
	defer func() { metrics.JournalCommit.WithLabelValues(op).Observe(time.Since(start).Seconds()) }()
	if err := b.Commit(sync); err != nil {
		return fmt.Errorf("persistence: %s %v: %w", op, id, err)
	}
	return nil
}

// checkEnvelope rejects an envelope whose records would be wrong: a zero
// id, or recipients whose Index is not their position (two recipients
// with the same Index would silently share one record).
func checkEnvelope(env *messages.Envelope) error {
	if env.ID == 0 {
		return errors.New("persistence: accept: message id 0")
	}
	if len(env.Rcpts) > maxRcpts {
		return fmt.Errorf("persistence: accept %v: %d recipients", env.ID, len(env.Rcpts))
	}
	for i := range env.Rcpts {
		r := &env.Rcpts[i]
		if r.Index != uint32(i) {
			return fmt.Errorf("persistence: accept %v: recipient %d has index %d", env.ID, i, r.Index)
		}
		if err := checkRcpt(r, len(env.Rcpts)); err != nil {
			return fmt.Errorf("persistence: accept %v: %w", env.ID, err)
		}
	}
	return nil
}

// checkRcpt rejects a recipient that Load would later refuse to read.
func checkRcpt(r *messages.Recipient, n int) error {
	if int64(r.Index) >= int64(n) {
		return fmt.Errorf("recipient index %d out of range [0,%d)", r.Index, n)
	}
	if err := checkRecipient(r); err != nil {
		return fmt.Errorf("recipient %d: %w", r.Index, err)
	}
	return nil
}
