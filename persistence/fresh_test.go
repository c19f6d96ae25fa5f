package persistence

import (
	"bytes"
	"io"
	"testing"

	"github.com/mtad/mtad/messages"
)

// A small body just accepted is read from memory, the same bytes as the
// journal's, and dropped by Finish; the bound holds.
func TestFreshBodies(t *testing.T) {
	j := openT(t, t.TempDir())
	env := sampleEnvelope(j.NextID())
	body := bodyOf(env.ID, 5000)
	env.Size = int64(len(body))
	if err := j.Accept(env, body); err != nil {
		t.Fatal(err)
	}
	body[0] ^= 0xff // the journal kept its own copy
	body[0] ^= 0xff
	r, err := j.OpenBody(env.ID)
	if err != nil {
		t.Fatal(err)
	}
	if r.mem == nil {
		t.Error("a fresh 5000-byte body was not served from memory")
	}
	got, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(got, body) || r.Size() != int64(len(body)) {
		t.Fatalf("read %d bytes, %v; want the %d written", len(got), err, len(body))
	}
	if n, err := r.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Errorf("Read after the end: %d, %v", n, err)
	}
	if err := j.FinishSized(env.ID, len(env.Rcpts), env.Size); err != nil {
		t.Fatal(err)
	}
	if _, ok := j.fresh.get(env.ID); ok {
		t.Error("Finish left the body in memory")
	}

	var f freshBodies
	for i := range freshLimit/freshMaxBody + 10 {
		f.put(messages.MsgID(i+1), make([]byte, freshMaxBody))
	}
	if f.bytes > freshLimit {
		t.Errorf("%d bytes kept, over the limit %d", f.bytes, freshLimit)
	}
	if _, ok := f.get(1); ok {
		t.Error("the oldest body was not dropped first")
	}
	f.put(999999, make([]byte, freshMaxBody+1))
	if _, ok := f.get(999999); ok {
		t.Error("a body over freshMaxBody was kept")
	}
}
