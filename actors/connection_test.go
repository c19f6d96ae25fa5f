package actors

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mtad/mtad/internal/testsink"
	"github.com/mtad/mtad/maildir"
	"github.com/mtad/mtad/messages"
	"github.com/mtad/mtad/outbound"
	"github.com/mtad/mtad/persistence"
)

// journalWith returns a journal holding one message to rcpt with a body of
// several chunks, and its job.
func journalWith(t *testing.T, rcpt string) (*persistence.Journal, *messages.Job, []byte) {
	t.Helper()
	j, err := persistence.Open(t.TempDir(), persistence.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	var b bytes.Buffer
	b.WriteString("Subject: big\r\n\r\n")
	for b.Len() < 3<<20 {
		b.WriteString(".a line that starts with a dot, to be stuffed\r\n")
	}
	env := &messages.Envelope{ID: j.NextID(), From: "s@sender.test", Size: int64(b.Len()),
		Rcpts: []messages.Recipient{{Index: 0, Addr: rcpt}}}
	if err := j.Accept(env, b.Bytes()); err != nil {
		t.Fatal(err)
	}
	job := &messages.Job{MsgID: env.ID, From: env.From, Size: env.Size, Rcpts: []messages.JobRcpt{{Index: 0, Addr: rcpt}}}
	return j, job, b.Bytes()
}

func dialSink(t *testing.T, s *testsink.Sink) netSession {
	t.Helper()
	to := 5 * time.Second
	c, err := outbound.Dial(context.Background(), []outbound.Target{{Host: "sink.test", Addr: netip.MustParseAddrPort(s.Addr)}},
		outbound.Options{Hostname: "mtad.test", Timeouts: outbound.Timeouts{Connect: to, Greeting: to, EHLO: to, MailFrom: to, RcptTo: to, Data: to}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return netSession{c}
}

// deliverJob streams a body of several chunks from the journal to the
// server, which gets it whole.
func TestDeliverJobStreamsBody(t *testing.T) {
	j, job, body := journalWith(t, "a@x.test")
	s := testsink.Start(t)
	conn := dialSink(t, s)
	replies := deliverJob(context.Background(), conn, j, job, false)
	if len(replies) != 1 || replies[0].Code != 250 {
		t.Fatalf("replies %v", replies)
	}
	if txs := s.Txs(); len(txs) != 1 || !bytes.Equal(txs[0].Data, body) {
		t.Fatalf("the server got %d transactions; want one with the %d-byte body", len(txs), len(body))
	}
}

// closeOnOpen closes the journal once the body is open, so that the first
// read of it, after the 354, fails.
type closeOnOpen struct{ j *persistence.Journal }

func (c closeOnOpen) OpenBody(id messages.MsgID) (*persistence.BodyReader, error) {
	r, err := c.j.OpenBody(id)
	c.j.Close()
	return r, err
}

// A journal read failure in the middle of DATA: no message reaches the
// server, the connection is dropped, and the recipient gets a temporary
// reply of class journal.
func TestDeliverJobJournalFailsMidData(t *testing.T) {
	j, job, _ := journalWith(t, "a@x.test")
	s := testsink.Start(t)
	conn := dialSink(t, s)
	replies := deliverJob(context.Background(), conn, closeOnOpen{j}, job, false)
	if len(replies) != 1 || !replies[0].Temporary() || replies[0].Class != "journal" {
		t.Fatalf("replies %v; want one temporary, class journal", replies)
	}
	if conn.Alive() {
		t.Error("connection alive after an unfinished DATA")
	}
	waitUntil(t, "the server to see the connection end", 5*time.Second, func() bool { return s.Live() == 0 })
	if txs := s.Txs(); len(txs) != 0 {
		t.Errorf("the server took %d messages", len(txs))
	}
}

// The local route streams the body into the mailbox too.
func TestDeliverJobMaildir(t *testing.T) {
	j, job, body := journalWith(t, "alice@example.com")
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "example.com", "alice"), 0o700); err != nil {
		t.Fatal(err)
	}
	conn := &maildirSession{store: &maildir.Store{Root: root, Hostname: "mx.test"},
		deps: &Deps{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}}
	replies := deliverJob(context.Background(), conn, j, job, true)
	if len(replies) != 1 || replies[0].Code != 250 {
		t.Fatalf("replies %v", replies)
	}
	newDir := filepath.Join(root, "example.com", "alice", "new")
	ents, err := os.ReadDir(newDir)
	if err != nil || len(ents) != 1 {
		t.Fatalf("new/: %v, %v", ents, err)
	}
	got, err := os.ReadFile(filepath.Join(newDir, ents[0].Name()))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(got), "Return-Path: <s@sender.test>\r\n") || !bytes.HasSuffix(got, body) {
		t.Errorf("mailbox copy of %d bytes is not the header and the %d-byte body", len(got), len(body))
	}
}
