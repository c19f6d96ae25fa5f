package persistence

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"testing"

	"github.com/cockroachdb/pebble/v2"

	"github.com/mtad/mtad/messages"
)

// bodyOf is a deterministic body of n random bytes for message id:
// random, so that compression does not hide what is written where.
func bodyOf(id messages.MsgID, n int) []byte {
	b := make([]byte, n)
	io.ReadFull(newBodySource(id, n), b)
	return b
}

// bodySource streams id's body of n bytes without holding it.
type bodySource struct {
	rng  *rand.ChaCha8
	n    int
	off  int
	step int // at most this many bytes per Read; 0: len(p)
}

func newBodySource(id messages.MsgID, n int) *bodySource {
	var seed [32]byte
	binary.LittleEndian.PutUint64(seed[:], uint64(id))
	return &bodySource{rng: rand.NewChaCha8(seed), n: n}
}

func (s *bodySource) Read(p []byte) (int, error) {
	if s.off == s.n {
		return 0, io.EOF
	}
	k := min(len(p), s.n-s.off)
	if s.step > 0 {
		k = min(k, s.step)
	}
	s.rng.Read(p[:k])
	s.off += k
	return k, nil
}

var chunkSizes = []int{0, 1, bodyChunkSize - 1, bodyChunkSize, bodyChunkSize + 1, 3*bodyChunkSize + 17}

// TestBodyChunks writes bodies around the chunk boundaries both ways,
// Accept and the streaming AcceptBody, and reads them back every way.
func TestBodyChunks(t *testing.T) {
	dir := t.TempDir()
	j := openT(t, dir)
	var envs []*messages.Envelope
	for _, n := range chunkSizes {
		for _, stream := range []bool{false, true} {
			env := sampleEnvelope(j.NextID())
			env.Size = int64(n)
			if stream {
				w := j.NewBody(env.ID)
				if _, err := io.CopyBuffer(w, func() *bodySource { s := newBodySource(env.ID, n); s.step = 7919; return s }(), make([]byte, 10000)); err != nil {
					t.Fatal(err)
				}
				if err := j.AcceptBody(env, w); err != nil {
					t.Fatalf("AcceptBody of %d bytes: %v", n, err)
				}
				w.Abort() // after a successful AcceptBody: nothing
			} else if err := j.Accept(env, bodyOf(env.ID, n)); err != nil {
				t.Fatalf("Accept of %d bytes: %v", n, err)
			}
			envs = append(envs, env)
			if got, want := countKeys(t, j, bodyLower(env.ID), bodyUpper(env.ID)), max(1, (n+bodyChunkSize-1)/bodyChunkSize); got != want {
				t.Errorf("%d bytes (stream %v): %d chunks, want %d", n, stream, got, want)
			}
		}
	}
	checkBodies := func() {
		t.Helper()
		for _, env := range envs {
			checkStreamedBody(t, j, env.ID, bodyOf(env.ID, int(env.Size)))
		}
	}
	checkBodies()
	j.Close()
	j = openT(t, dir)
	checkBodies()
	for _, env := range envs {
		if err := j.Finish(env.ID, len(env.Rcpts)); err != nil {
			t.Fatal(err)
		}
	}
	lo, hi := prefixBounds(prefixBody)
	if n := countKeys(t, j, lo, hi); n != 0 {
		t.Errorf("%d body records left after Finish", n)
	}
	if _, err := j.OpenBody(envs[0].ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("OpenBody after Finish: %v, want ErrNotFound", err)
	}
}

// checkStreamedBody reads id's body through OpenBody in small reads,
// through Body, and through BodyPrefix.
func checkStreamedBody(t *testing.T, j *Journal, id messages.MsgID, want []byte) {
	t.Helper()
	r, err := j.OpenBody(id)
	if err != nil {
		t.Fatalf("OpenBody: %v", err)
	}
	if r.Size() != int64(len(want)) {
		t.Errorf("Size = %d, want %d", r.Size(), len(want))
	}
	got, err := io.ReadAll(io.LimitReader(onlyReader{r}, 1<<40))
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("OpenBody of %d bytes read %d bytes, %v", len(want), len(got), err)
	}
	if err := r.Close(); err != nil {
		t.Error(err)
	}
	checkBody(t, j, id, want)
	for _, n := range []int64{0, 100, bodyChunkSize + 3, 1 << 30} {
		p, err := j.BodyPrefix(id, n)
		if err != nil || !bytes.Equal(p, want[:min(int(n), len(want))]) {
			t.Errorf("BodyPrefix(%d) of %d bytes: %d bytes, %v", n, len(want), len(p), err)
		}
	}
}

// onlyReader hides every method but Read, so io.ReadAll reads in small
// pieces that straddle chunk boundaries.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p[:min(len(p), 5000)]) }

func countKeys(t testing.TB, j *Journal, lo, hi []byte) int {
	t.Helper()
	it, err := j.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for it.First(); it.Valid(); it.Next() {
		n++
	}
	if err := it.Close(); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestBodyStreamMemory streams a 20 MiB body in and out and checks that
// neither direction holds it: the live heap, once the body is written but
// not accepted, and half way through reading it, has grown by much less
// than the body, and all that was allocated on the way (Pebble's WAL
// blocks included) is less than the body.
func TestBodyStreamMemory(t *testing.T) {
	const size = 20 << 20
	j := openT(t, t.TempDir())
	// No flush or compaction in the middle: their buffers are Pebble's,
	// and would blur what the body costs.
	growMemTable(t, j)
	if err := j.db.Compact(context.Background(), []byte{0}, []byte{0xff}, false); err != nil {
		t.Fatal(err)
	}
	env := sampleEnvelope(j.NextID())
	want := sha256.Sum256(bodyOf(env.ID, size))
	buf := make([]byte, 32<<10)
	base := liveHeap()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)

	w := j.NewBody(env.ID)
	if _, err := io.CopyBuffer(w, newBodySource(env.ID, size), buf); err != nil {
		t.Fatal(err)
	}
	writing := liveHeap() - base
	if err := j.AcceptBody(env, w); err != nil {
		t.Fatal(err)
	}
	r, err := j.OpenBody(env.ID)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	if _, err := io.CopyBuffer(h, io.LimitReader(r, size/2), buf); err != nil {
		t.Fatal(err)
	}
	reading := liveHeap() - base
	if _, err := io.CopyBuffer(h, r, buf); err != nil {
		t.Fatal(err)
	}
	r.Close()
	runtime.ReadMemStats(&after)

	if !bytes.Equal(h.Sum(nil), want[:]) {
		t.Fatal("body read back differs")
	}
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("20 MiB through the journal: live heap +%d KiB writing, +%d KiB reading; %.1f MiB allocated",
		writing>>10, reading>>10, float64(alloc)/(1<<20))
	if raceEnabled {
		t.Skip("under the race detector Pebble allocates on the Go heap at random")
	}
	if writing > size/2 || reading > size/2 || alloc > size {
		t.Errorf("a %d-byte body grew the live heap by %d writing and %d reading, allocated %d: something holds it",
			size, writing, reading, alloc)
	}
}

// liveHeap returns the bytes of live heap objects after a collection; the
// second empties the sync.Pools (Pebble's batches, our chunk buffers), whose
// contents a first one keeps as victims.
func liveHeap() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// TestBodyAbort: Abort deletes the committed chunks and the pending
// record; Write and AcceptBody after it fail.
func TestBodyAbort(t *testing.T) {
	j := openT(t, t.TempDir())
	env := sampleEnvelope(j.NextID())
	w := j.NewBody(env.ID)
	if _, err := w.Write(bodyOf(env.ID, 2*bodyChunkSize+5)); err != nil {
		t.Fatal(err)
	}
	if n := countKeys(t, j, bodyLower(env.ID), bodyUpper(env.ID)); n != 2 {
		t.Fatalf("%d chunks committed before the end, want 2", n)
	}
	w.Abort()
	w.Abort()
	lo, hi := prefixBounds(prefixBody)
	plo, phi := prefixBounds(prefixPending)
	if n, p := countKeys(t, j, lo, hi), countKeys(t, j, plo, phi); n != 0 || p != 0 {
		t.Errorf("after Abort: %d body records, %d pending records", n, p)
	}
	if _, err := w.Write([]byte("x")); err == nil {
		t.Error("Write after Abort succeeded")
	}
	if err := j.AcceptBody(env, w); err == nil {
		t.Error("AcceptBody after Abort succeeded")
	}
	if err := j.AcceptBody(sampleEnvelope(j.NextID()), j.NewBody(env.ID)); err == nil {
		t.Error("AcceptBody with another message's body succeeded")
	}
	if n, _ := j.Stats(); n != 0 {
		t.Errorf("Stats = %d after refused accepts", n)
	}
}

// TestOrphanBodies: chunks of a message whose AcceptBody never ran (the
// process died during DATA) are gone after the next Open; bodies of
// accepted messages, streamed or not, are not touched.
func TestOrphanBodies(t *testing.T) {
	dir := t.TempDir()
	j := openT(t, dir)
	orphan := j.NewBody(j.NextID())
	if _, err := io.Copy(orphan, newBodySource(1, 3*bodyChunkSize+10)); err != nil {
		t.Fatal(err)
	}
	small := j.NewBody(j.NextID()) // no chunk committed: nothing to leave behind
	small.Write([]byte("hello"))
	kept := sampleEnvelope(j.NextID())
	w := j.NewBody(kept.ID)
	io.Copy(w, newBodySource(kept.ID, 2*bodyChunkSize+1))
	if err := j.AcceptBody(kept, w); err != nil {
		t.Fatal(err)
	}
	legacy := sampleEnvelope(j.NextID())
	writeLegacy(t, j, legacy, []byte("old body"))
	if n := countKeys(t, j, bodyLower(orphan.id), bodyUpper(orphan.id)); n != 3 {
		t.Fatalf("orphan has %d chunks before the restart, want 3", n)
	}
	j.Close() // as after a crash, the orphan's chunks are on disk

	j = openT(t, dir)
	if n := countKeys(t, j, bodyLower(orphan.id), bodyUpper(orphan.id)); n != 0 {
		t.Errorf("orphan has %d chunks after Open", n)
	}
	lo, hi := prefixBounds(prefixPending)
	if n := countKeys(t, j, lo, hi); n != 0 {
		t.Errorf("%d pending records after Open", n)
	}
	checkStreamedBody(t, j, kept.ID, bodyOf(kept.ID, 2*bodyChunkSize+1))
	checkBody(t, j, legacy.ID, []byte("old body"))
	if got := loadAll(t, j); len(got) != 2 {
		t.Errorf("Load gave %d messages, want 2", len(got))
	}
}

// writeLegacy journals env with its body in the old single-record form,
// as Accept wrote it before bodies were chunked.
func writeLegacy(t testing.TB, j *Journal, env *messages.Envelope, body []byte) {
	t.Helper()
	b := j.db.NewBatch()
	defer b.Close()
	b.Set(legacyBodyKey(env.ID), body, nil)
	b.Set(envelopeKey(env.ID), appendEnvelope(nil, env), nil)
	setRcpts(b, env.ID, env.Rcpts)
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
}

// TestLegacyBodyStore opens a store written by raw Pebble in an older
// format major version, with a body in the old single-record form: Open
// ratchets the format, and the body reads, streams and finishes.
func TestLegacyBodyStore(t *testing.T) {
	dir := t.TempDir()
	db, err := pebble.Open(dir, &pebble.Options{FormatMajorVersion: pebble.FormatTableFormatV6,
		Logger: pebbleLogger{log: testLogger(t)}})
	if err != nil {
		t.Fatal(err)
	}
	env := sampleEnvelope(42)
	body := bodyOf(42, 3000)
	b := db.NewBatch()
	b.Set(metaSchema, []byte{schemaVersion}, nil)
	b.Set(legacyBodyKey(env.ID), body, nil)
	b.Set(envelopeKey(env.ID), appendEnvelope(nil, env), nil)
	setRcpts(b, env.ID, env.Rcpts)
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(db.Flush(), db.Close()); err != nil { // an sstable in the old table format
		t.Fatal(err)
	}

	j := openT(t, dir)
	if v := j.db.FormatMajorVersion(); v != pebbleFormat {
		t.Errorf("format major version %v after Open, want %v", v, pebbleFormat)
	}
	if id := j.NextID(); id <= env.ID {
		t.Errorf("NextID = %v, not above the legacy body's id %v", id, env.ID)
	}
	got := loadAll(t, j)
	if len(got) != 1 {
		t.Fatalf("Load gave %d messages", len(got))
	}
	checkEqual(t, got[0], env)
	checkStreamedBody(t, j, env.ID, body)
	if j.chunkedFrom <= env.ID {
		t.Errorf("chunkedFrom = %v, not above the legacy body's id %v", j.chunkedFrom, env.ID)
	}
	// The delivery path's FinishSized finds the old form too.
	if err := j.FinishSized(env.ID, len(env.Rcpts), env.Size); err != nil {
		t.Fatal(err)
	}
	if _, err := j.Body(env.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("Body after Finish: %v", err)
	}
}

// A chunk missing in the middle is a read error, not a short body.
func TestBodyMissingChunk(t *testing.T) {
	j := openT(t, t.TempDir())
	env := sampleEnvelope(j.NextID())
	if err := j.Accept(env, bodyOf(env.ID, 3*bodyChunkSize)); err != nil {
		t.Fatal(err)
	}
	r, err := j.OpenBody(env.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := j.db.Delete(chunkKey(env.ID, 1), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, r)
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("read %d bytes, then %v; want an error wrapping ErrNotFound", n, err)
	}
	if n != bodyChunkSize {
		t.Errorf("read %d bytes before the error, want %d", n, bodyChunkSize)
	}
}

// A reader open across Close fails its next read with ErrClosed.
func TestBodyReaderAfterClose(t *testing.T) {
	j := openT(t, t.TempDir())
	env := sampleEnvelope(j.NextID())
	if err := j.Accept(env, bodyOf(env.ID, 2*bodyChunkSize)); err != nil {
		t.Fatal(err)
	}
	r, err := j.OpenBody(env.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Read(make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = io.Copy(io.Discard, r)
	if !errors.Is(err, ErrClosed) {
		t.Errorf("read after Close: %v, want ErrClosed", err)
	}
	w := j.NewBody(j.NextID())
	if _, err := w.Write(make([]byte, bodyChunkSize+1)); !errors.Is(err, ErrClosed) {
		t.Errorf("Write after Close: %v, want ErrClosed", err)
	}
}

// TestFlushDropsDelivered: a message finished while its records are in the
// memtable leaves (nearly) nothing for the flush: SET and SINGLEDEL of each
// chunk and of the envelope cancel, and a recipient's SET is dropped under
// its DELETE, which alone is written. Unfinished bodies are flushed into
// blob files, everything else into sstables.
func TestFlushDropsDelivered(t *testing.T) {
	j := openT(t, t.TempDir())
	growMemTable(t, j)
	before := j.db.Metrics()
	const n, size = 20, bodyChunkSize + 2000
	var delivered, waiting []*messages.Envelope
	for i := range 2 * n {
		env := sampleEnvelope(j.NextID())
		if err := j.Accept(env, bodyOf(env.ID, size)); err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			delivered = append(delivered, env)
		} else {
			waiting = append(waiting, env)
		}
	}
	for _, env := range delivered {
		if err := j.Finish(env.ID, len(env.Rcpts)); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.db.Flush(); err != nil {
		t.Fatal(err)
	}
	after := j.db.Metrics()
	blobs := after.Levels[0].BlobBytesFlushed - before.Levels[0].BlobBytesFlushed
	tables := after.Levels[0].TableBytesFlushed - before.Levels[0].TableBytesFlushed
	t.Logf("one flush: %d bytes to blob files, %d to sstables", blobs, tables)
	bodies := uint64(n * size)
	if blobs < bodies || blobs > bodies+bodies/10 {
		t.Errorf("%d bytes flushed to blob files; want the %d bytes of the waiting bodies, not the delivered", blobs, bodies)
	}
	if tables > 64<<10 {
		t.Errorf("%d sstable bytes flushed: bodies kept in place, or delivered ones written", tables)
	}
	for _, env := range waiting {
		checkStreamedBody(t, j, env.ID, bodyOf(env.ID, size))
	}
	if got := loadAll(t, j); len(got) != n {
		t.Errorf("Load gave %d messages, want %d", len(got), n)
	}
}

// growMemTable makes the memtable its full size: Pebble starts with 256
// KiB and doubles it at each rotation.
func growMemTable(t testing.TB, j *Journal) {
	t.Helper()
	for range 10 {
		if err := j.db.Set(metaSchema, []byte{schemaVersion}, pebble.NoSync); err != nil {
			t.Fatal(err)
		}
		if err := j.db.Flush(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestPebbleBlobAccounting pins the Pebble accounting writeStats corrects
// for: a flush adds its blob bytes to both BlobBytesFlushed and
// BlobBytesCompacted. If this fails, Pebble changed and writeStats must
// stop subtracting.
func TestPebbleBlobAccounting(t *testing.T) {
	j := openT(t, t.TempDir())
	env := sampleEnvelope(j.NextID())
	if err := j.Accept(env, bodyOf(env.ID, 100<<10)); err != nil {
		t.Fatal(err)
	}
	if err := j.db.Flush(); err != nil {
		t.Fatal(err)
	}
	l0 := j.db.Metrics().Levels[0]
	if l0.BlobBytesFlushed < 100<<10 || l0.BlobBytesCompacted != l0.BlobBytesFlushed {
		t.Errorf("after one flush: BlobBytesFlushed %d, BlobBytesCompacted %d; want equal", l0.BlobBytesFlushed, l0.BlobBytesCompacted)
	}
}

func TestWriteStats(t *testing.T) {
	if s := writeStats(&pebble.Metrics{}); s != (WriteStats{}) {
		t.Errorf("stats of nothing written = %+v", s)
	}
	j := openT(t, t.TempDir())
	before := j.WriteStats()
	env := sampleEnvelope(j.NextID())
	if err := j.Accept(env, bodyOf(env.ID, 100<<10)); err != nil {
		t.Fatal(err)
	}
	s := j.WriteStats()
	if s.WALLogicalBytes-before.WALLogicalBytes < 100<<10 || s.WALPhysicalBytes < s.WALLogicalBytes {
		t.Errorf("after a 100 KiB message: %+v", s)
	}
	if s.WriteAmplification < 1 || s.WriteAmplification > 2 {
		t.Errorf("WriteAmplification = %v before any flush, want about 1", s.WriteAmplification)
	}
	j.Close()
	if s := j.WriteStats(); s != (WriteStats{}) {
		t.Errorf("after Close: %+v", s)
	}
}

func TestBodySpanPolicy(t *testing.T) {
	for _, tt := range []struct {
		start   []byte
		inPlace bool
		end     string
	}{
		{[]byte{0}, true, "b"},
		{envelopeKey(1)[:1], true, ""},
		{chunkKey(7, 3), false, "c"},
		{legacyBodyKey(7), false, "c"},
		{metaSchema, true, ""},
		{rcptKey(1, 1), true, ""},
	} {
		p, end, err := bodiesOnlySpanPolicy(tt.start)
		inPlace := p.ValueStoragePolicy == pebble.ValueStorageLowReadLatency
		if err != nil || inPlace != tt.inPlace || string(end) != tt.end {
			t.Errorf("policy at %x: in place %v, end %q; want %v, %q", tt.start, inPlace, end, tt.inPlace, tt.end)
		}
	}
}

func ExampleJournal_AcceptBody() {
	dir, _ := os.MkdirTemp("", "journal")
	defer os.RemoveAll(dir)
	j, _ := Open(dir, Options{})
	defer j.Close()
	env := &messages.Envelope{ID: j.NextID(), From: "a@example.org",
		Rcpts: []messages.Recipient{{Index: 0, Addr: "b@example.com"}}}
	w := j.NewBody(env.ID)
	if _, err := io.Copy(w, bytes.NewReader([]byte("Subject: hi\r\n\r\nhello\r\n"))); err != nil {
		w.Abort()
		return
	}
	env.Size = w.Size()
	if err := j.AcceptBody(env, w); err != nil {
		w.Abort()
		return
	}
	r, _ := j.OpenBody(env.ID)
	defer r.Close()
	b, _ := io.ReadAll(r)
	fmt.Printf("%d bytes: %q\n", r.Size(), b)
	// Output: 22 bytes: "Subject: hi\r\n\r\nhello\r\n"
}

// FinishSized removes every body key of messages of every size, streamed
// or not, without reading them.
func TestFinishSized(t *testing.T) {
	j := openT(t, t.TempDir())
	var envs []*messages.Envelope
	for _, size := range []int{0, 1, bodyChunkSize, bodyChunkSize + 1, 3*bodyChunkSize + 7} {
		env := sampleEnvelope(j.NextID())
		w := j.NewBody(env.ID)
		if _, err := io.Copy(w, newBodySource(env.ID, size)); err != nil {
			t.Fatal(err)
		}
		if err := j.AcceptBody(env, w); err != nil {
			t.Fatal(err)
		}
		envs = append(envs, env)
		plain := sampleEnvelope(j.NextID())
		body := bodyOf(plain.ID, size)
		plain.Size = int64(len(body))
		if err := j.Accept(plain, body); err != nil {
			t.Fatal(err)
		}
		envs = append(envs, plain)
	}
	for _, env := range envs {
		if err := j.FinishSized(env.ID, len(env.Rcpts), env.Size); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := j.Stats(); err != nil || n != 0 {
		t.Fatalf("Stats = %d, %v after finishing every message", n, err)
	}
	lo, hi := prefixBounds(prefixBody)
	it, err := j.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		t.Errorf("body key %x left after FinishSized", it.Key())
	}
	if err := j.db.Flush(); err != nil {
		t.Fatal(err)
	}
	if n := j.misuse.Load(); n != 0 {
		t.Errorf("Pebble reported %d possible API misuses (ineffectual single deletes?)", n)
	}
}
