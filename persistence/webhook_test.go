package persistence

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"testing"
)

// outboxValues returns n values naming their sequence, first to first+n-1.
func outboxValues(first uint64, n int) [][]byte {
	vs := make([][]byte, n)
	for i := range vs {
		vs[i] = fmt.Appendf(nil, "event %d", first+uint64(i))
	}
	return vs
}

// loadOutboxT returns every entry of endpoint above after.
func loadOutboxT(t *testing.T, j *Journal, endpoint string, after uint64) ([]uint64, [][]byte) {
	t.Helper()
	seqs, vs, err := j.LoadOutbox(endpoint, after, 1<<20)
	if err != nil {
		t.Fatalf("LoadOutbox(%q, %d): %v", endpoint, after, err)
	}
	return seqs, vs
}

func lastSeqT(t *testing.T, j *Journal, endpoint string) uint64 {
	t.Helper()
	n, err := j.LastOutboxSeq(endpoint)
	if err != nil {
		t.Fatalf("LastOutboxSeq(%q): %v", endpoint, err)
	}
	return n
}

func seqRange(first, last uint64) []uint64 {
	var s []uint64
	for i := first; i <= last; i++ {
		s = append(s, i)
	}
	return s
}

func TestOutboxAppendLoadAck(t *testing.T) {
	j := openT(t, t.TempDir())
	if n := lastSeqT(t, j, "ops"); n != 0 {
		t.Fatalf("empty outbox: LastOutboxSeq = %d, want 0", n)
	}
	if err := j.AppendOutbox("ops", 1, outboxValues(1, 5)); err != nil {
		t.Fatal(err)
	}
	if err := j.AppendOutbox("ops", 6, outboxValues(6, 3)); err != nil {
		t.Fatal(err)
	}
	seqs, vs := loadOutboxT(t, j, "ops", 0)
	if want := seqRange(1, 8); !reflect.DeepEqual(seqs, want) {
		t.Fatalf("seqs %v, want %v", seqs, want)
	}
	if !reflect.DeepEqual(vs, outboxValues(1, 8)) {
		t.Fatalf("values %q", vs)
	}

	seqs, vs, err := j.LoadOutbox("ops", 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(seqs, []uint64{3, 4, 5}) || !reflect.DeepEqual(vs, outboxValues(3, 3)) {
		t.Fatalf("LoadOutbox(after 2, limit 3) = %v %q", seqs, vs)
	}

	if err := j.AckOutbox("ops", 4); err != nil {
		t.Fatal(err)
	}
	if seqs, _ := loadOutboxT(t, j, "ops", 0); !reflect.DeepEqual(seqs, seqRange(5, 8)) {
		t.Fatalf("after ack 4: seqs %v", seqs)
	}
	if err := j.AckOutbox("ops", 2); err != nil { // already acknowledged: a no-op
		t.Fatal(err)
	}
	if n := lastSeqT(t, j, "ops"); n != 8 {
		t.Fatalf("LastOutboxSeq = %d, want 8", n)
	}
}

// After every entry is acknowledged, the high-water mark keeps numbering
// going, across a reopen too.
func TestOutboxMarkSurvivesAck(t *testing.T) {
	dir := t.TempDir()
	j := openT(t, dir)
	if err := j.AppendOutbox("ops", 1, outboxValues(1, 10)); err != nil {
		t.Fatal(err)
	}
	if err := j.AckOutbox("ops", 10); err != nil {
		t.Fatal(err)
	}
	if seqs, _ := loadOutboxT(t, j, "ops", 0); len(seqs) != 0 {
		t.Fatalf("after acking all: %v left", seqs)
	}
	if n := lastSeqT(t, j, "ops"); n != 10 {
		t.Fatalf("LastOutboxSeq after acking all = %d, want 10", n)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	j = openT(t, dir)
	if n := lastSeqT(t, j, "ops"); n != 10 {
		t.Fatalf("LastOutboxSeq after reopen = %d, want 10", n)
	}
	if err := j.AppendOutbox("ops", 11, outboxValues(11, 2)); err != nil {
		t.Fatal(err)
	}
	if seqs, _ := loadOutboxT(t, j, "ops", 0); !reflect.DeepEqual(seqs, []uint64{11, 12}) {
		t.Fatalf("after reopen and append: %v", seqs)
	}
	if err := j.AckOutbox("ops", math.MaxUint64); err != nil {
		t.Fatal(err)
	}
	if seqs, _ := loadOutboxT(t, j, "ops", 0); len(seqs) != 0 {
		t.Fatalf("after acking everything: %v left", seqs)
	}
}

// Endpoints whose names are prefixes of one another, or that sort next to
// each other, keep apart; and the outbox does not disturb the messages.
func TestOutboxEndpointsApart(t *testing.T) {
	j := openT(t, t.TempDir())
	env := sampleEnvelope(j.NextID())
	if err := j.Accept(env, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	names := []string{"a", "ab", "b", "a-", "\xff"}
	for i, name := range names {
		if err := j.AppendOutbox(name, 1, outboxValues(uint64(100*i+1), i+1)); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.AckOutbox("ab", 1); err != nil {
		t.Fatal(err)
	}
	for i, name := range names {
		seqs, vs := loadOutboxT(t, j, name, 0)
		first, want := uint64(1), outboxValues(uint64(100*i+1), i+1)
		if name == "ab" {
			first, want = 2, want[1:]
		}
		if !reflect.DeepEqual(seqs, seqRange(first, uint64(i+1))) || !reflect.DeepEqual(vs, want) {
			t.Errorf("%q: %v %q, want from %d %q", name, seqs, vs, first, want)
		}
		if n := lastSeqT(t, j, name); n != uint64(i+1) {
			t.Errorf("%q: LastOutboxSeq = %d, want %d", name, n, i+1)
		}
	}
	envs := loadAll(t, j)
	if len(envs) != 1 {
		t.Fatalf("Load: %d envelopes, want 1", len(envs))
	}
	checkEqual(t, envs[0], env)
	if n, err := j.Stats(); err != nil || n != 1 {
		t.Fatalf("Stats = %d, %v", n, err)
	}
}

func TestOutboxBadArguments(t *testing.T) {
	j := openT(t, t.TempDir())
	long := string(make([]byte, 256))
	for _, err := range []error{
		j.AppendOutbox("", 1, outboxValues(1, 1)),
		j.AppendOutbox(long, 1, outboxValues(1, 1)),
		j.AppendOutbox("ops", 0, outboxValues(0, 1)),
		j.AppendOutbox("ops", math.MaxUint64, outboxValues(1, 2)),
		j.AckOutbox("", 1),
	} {
		if err == nil {
			t.Errorf("bad argument accepted")
		}
	}
	if _, _, err := j.LoadOutbox("ops", 0, 0); err == nil {
		t.Errorf("LoadOutbox with limit 0 accepted")
	}
	if _, err := j.LastOutboxSeq(""); err == nil {
		t.Errorf("LastOutboxSeq of an empty name accepted")
	}
	if err := j.AppendOutbox("ops", 1, nil); err != nil {
		t.Errorf("empty append: %v", err)
	}
	if err := j.AppendOutbox("ops", math.MaxUint64, outboxValues(1, 1)); err != nil {
		t.Errorf("append at the last sequence: %v", err)
	}
	if seqs, _, err := j.LoadOutbox("ops", math.MaxUint64, 10); err != nil || len(seqs) != 0 {
		t.Errorf("LoadOutbox after the last sequence = %v, %v", seqs, err)
	}
}

func TestOutboxClosed(t *testing.T) {
	j := openT(t, t.TempDir())
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	_, _, loadErr := j.LoadOutbox("ops", 0, 10)
	_, lastErr := j.LastOutboxSeq("ops")
	for _, err := range []error{j.AppendOutbox("ops", 1, outboxValues(1, 1)), loadErr, lastErr, j.AckOutbox("ops", 1)} {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("after Close: %v, want ErrClosed", err)
		}
	}
}
