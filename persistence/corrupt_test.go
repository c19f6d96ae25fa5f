package persistence

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"

	"github.com/mtad/mtad/messages"
)

// TestLoadCorrupt damages the records of one message through the raw
// Pebble handle and checks that Load names the key and does not panic.
func TestLoadCorrupt(t *testing.T) {
	tests := []struct {
		name   string
		damage func(b *pebble.Batch, id messages.MsgID)
		key    func(id messages.MsgID) []byte
	}{
		{"garbage envelope", func(b *pebble.Batch, id messages.MsgID) {
			b.Set(envelopeKey(id), []byte("\x01garbage\xff\xff"), nil)
		}, envelopeKey},
		{"unknown envelope version", func(b *pebble.Batch, id messages.MsgID) {
			b.Set(envelopeKey(id), []byte{9}, nil)
		}, envelopeKey},
		{"truncated recipient", func(b *pebble.Batch, id messages.MsgID) {
			b.Set(rcptKey(id, 1), []byte{recipientV1, 40, 'a'}, nil)
		}, func(id messages.MsgID) []byte { return rcptKey(id, 1) }},
		{"missing recipient", func(b *pebble.Batch, id messages.MsgID) {
			b.Delete(rcptKey(id, 1), nil)
		}, envelopeKey},
		{"extra recipient", func(b *pebble.Batch, id messages.MsgID) {
			b.Set(rcptKey(id, 7), appendRecipient(nil, &messages.Recipient{}), nil)
		}, func(id messages.MsgID) []byte { return rcptKey(id, 7) }},
		{"short recipient key", func(b *pebble.Batch, id messages.MsgID) {
			b.Set(append([]byte{prefixRcpt}, envelopeKey(id)[1:]...), nil, nil)
		}, func(id messages.MsgID) []byte { return append([]byte{prefixRcpt}, envelopeKey(id)[1:]...) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := openT(t, t.TempDir())
			env := sampleEnvelope(j.NextID())
			if err := j.Accept(env, nil); err != nil {
				t.Fatal(err)
			}
			b := j.db.NewBatch()
			tt.damage(b, env.ID)
			if err := b.Commit(pebble.Sync); err != nil {
				t.Fatal(err)
			}
			err := j.Load(func(*messages.Envelope) error { return nil })
			checkCorrupt(t, err, tt.key(env.ID))
		})
	}
}

func checkCorrupt(t *testing.T, err error, key []byte) {
	t.Helper()
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Load: %v, want ErrCorrupt", err)
	}
	if hex := fmt.Sprintf("%x", key); !strings.Contains(err.Error(), hex) {
		t.Errorf("error %q does not name key %s", err, hex)
	}
	t.Log(err)
}

// Recipient records whose message has no envelope are skipped.
func TestLoadSkipsOrphanRecipients(t *testing.T) {
	j := openT(t, t.TempDir())
	env := sampleEnvelope(j.NextID())
	if err := j.Accept(env, nil); err != nil {
		t.Fatal(err)
	}
	orphan := appendRecipient(nil, &messages.Recipient{Addr: "x@y"})
	for _, id := range []messages.MsgID{env.ID - 1, env.ID + 1} {
		if err := j.db.Set(rcptKey(id, 0), orphan, pebble.Sync); err != nil {
			t.Fatal(err)
		}
	}
	got := loadAll(t, j)
	if len(got) != 1 {
		t.Fatalf("Load gave %d envelopes, want 1", len(got))
	}
	checkEqual(t, got[0], env)
}

func TestOpenCorruptMark(t *testing.T) {
	dir := t.TempDir()
	j := openT(t, dir)
	if err := j.db.Set(metaNextID, []byte("junk"), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	j.Close()
	_, err := Open(dir, Options{})
	checkCorrupt(t, err, metaNextID)
	// The failed Open released the directory.
	l, err := lockDir(dir)
	if err != nil {
		t.Fatalf("lock after failed Open: %v", err)
	}
	l.release()
}
