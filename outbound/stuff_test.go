package outbound

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/textproto"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/emersion/go-smtp"
)

var stuffBodies = []string{
	"", ".", "a", "a\r\n", ".a\r\n", "a\r\n.\r\nb\r\n", "a\r\n..\r\n", "a\r\n.", "\r\n.\r\n.\r\n",
	"Subject: x\r\n\r\n.hidden\r\nend", "no newline at end", "x\r\n\r\n",
	"a\n", "a\rb", "a\r", "\n.\n", "a\r\r\n", "\r.\r\n", ".\n.\r.", "\r\n", "\n", "\r",
}

// The streaming dot-stuffing puts the same bytes on the wire as
// net/textproto's DotWriter, whatever the pieces the body is read in: every
// split into two reads, and one byte a read.
func TestStuffedMatchesDotWriter(t *testing.T) {
	for _, body := range stuffBodies {
		want := dotWriterBytes(body)
		for cut := 0; cut <= len(body); cut++ {
			r := io.MultiReader(strings.NewReader(body[:cut]), strings.NewReader(body[cut:]))
			if got := stuffedBytes(t, r); got != want {
				t.Errorf("body %q cut at %d: stuffed %q, DotWriter %q", body, cut, got, want)
			}
		}
		if got := stuffedBytes(t, iotest.OneByteReader(strings.NewReader(body))); got != want {
			t.Errorf("body %q a byte at a time: stuffed %q, DotWriter %q", body, got, want)
		}
	}
}

func stuffedBytes(t testing.TB, r io.Reader) string {
	var out bytes.Buffer
	w := &wire{w: textproto.NewWriter(bufio.NewWriter(&out))}
	if err := w.body(r, 0); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

func dotWriterBytes(body string) string {
	var out bytes.Buffer
	dw := textproto.NewWriter(bufio.NewWriter(&out)).DotWriter()
	_, _ = dw.Write([]byte(body))
	_ = dw.Close()
	return out.String()
}

// The body ends in CRLF.CRLF and holds no other line that is a lone dot.
func FuzzStuffed(f *testing.F) {
	for _, b := range stuffBodies {
		f.Add(b, uint8(1))
	}
	f.Fuzz(func(t *testing.T, body string, cut uint8) {
		want := dotWriterBytes(body)
		r := io.MultiReader(strings.NewReader(body[:int(cut)%(len(body)+1)]), strings.NewReader(body[int(cut)%(len(body)+1):]))
		got := stuffedBytes(t, r)
		if got != want {
			t.Errorf("body %q cut at %d: stuffed %q, DotWriter %q", body, cut, got, want)
		}
		if strings.Index(got, "\r\n.\r\n") != len(got)-5 {
			t.Errorf("body %q: %q has a final dot before its end", body, got)
		}
	})
}

// failingReader returns n bytes of a body, then err.
type failingReader struct {
	n   int
	err error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n == 0 {
		return 0, f.err
	}
	k := min(len(p), f.n)
	for i := range p[:k] {
		p[i] = "abcdefgh\r\n"[i%10]
	}
	f.n -= k
	return k, nil
}

// A body that fails to read, or reads short or long of its Size, in the
// middle of DATA: the message must not be finished. The connection is
// closed without the final dot, every recipient gets a temporary reply of
// class journal, and the server takes no message.
func TestBodyReadErrorAbortsData(t *testing.T) {
	readErr := errors.New("chunk 3 missing")
	tests := []struct {
		name string
		body io.Reader
		size int64
	}{
		{"read error", &failingReader{n: 100 << 10, err: readErr}, 200 << 10},
		{"read error without size", &failingReader{n: 100 << 10, err: readErr}, 0},
		{"short", &failingReader{n: 100 << 10, err: io.EOF}, 100<<10 + 1},
		{"long", &failingReader{n: 100 << 10, err: io.EOF}, 100<<10 - 1},
	}
	for _, tt := range tests {
		for _, lmtp := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s lmtp=%v", tt.name, lmtp), func(t *testing.T) {
				s := newSink(t, func(srv *smtp.Server) { srv.LMTP = lmtp })
				opts := testOpts()
				opts.LMTP, opts.NoChunking = lmtp, true
				c := dialT(t, opts, s.target)
				tx := newTx("a@x.test", "b@x.test")
				f := *tt.body.(*failingReader)
				tx.Body, tx.Size = &f, tt.size
				got, err := c.Deliver(context.Background(), tx)
				var e *Error
				if !errors.As(err, &e) || !e.Temporary || e.Class != ClassJournal || e.Stage != StageData {
					t.Fatalf("Deliver error = %#v, want temporary journal error at data", err)
				}
				if tt.name == "read error" && !errors.Is(err, readErr) {
					t.Errorf("error %v does not wrap the read error", err)
				}
				checkReplies(t, got, []want{{0, "", ClassJournal}, {0, "", ClassJournal}})
				if c.Alive() {
					t.Error("connection still alive after an unfinished DATA")
				}
				eventually(t, "the server to see the connection end", func() bool {
					txs := s.transactions()
					return len(txs) == 1 && txs[0].dataErr != nil
				})
				if txs := s.transactions(); txs[0].Data {
					t.Errorf("the server took a message of %d bytes", len(txs[0].Body))
				}
			})
		}
	}
}

// A body of many reads, read in odd pieces, arrives whole, dot-stuffed and
// unstuffed again by the server.
func TestLargeBodyStreams(t *testing.T) {
	s := newSink(t, nil)
	opts := testOpts()
	opts.Timeouts.Data = time.Minute // the race detector slows the server's byte-wise reads
	c := dialT(t, opts, s.target)
	const size = 4 << 20
	var body bytes.Buffer
	for body.Len() < size {
		fmt.Fprintf(&body, ".line %d\r\n", body.Len())
	}
	want := body.String()
	tx := newTx("a@x.test")
	tx.Body, tx.Size = iotest.HalfReader(strings.NewReader(want)), int64(len(want))
	got, err := c.Deliver(context.Background(), tx)
	if err != nil || got[0].Code != 250 {
		t.Fatalf("Deliver = %v, %v", got, err)
	}
	txs := s.transactions()
	if len(txs) != 1 || string(txs[0].Body) != want {
		t.Fatalf("the server got %d transactions, the first of %d bytes; want %d", len(txs), len(txs[0].Body), len(want))
	}
}

// With CHUNKING, a body that fails to read, or reads short or long of its
// Size, fails the transaction before anything is sent: every recipient
// gets a temporary reply of class journal, the server sees no MAIL, and
// the connection delivers the next message.
func TestBodyReadErrorBeforeChunk(t *testing.T) {
	readErr := errors.New("chunk 3 missing")
	tests := []struct {
		name string
		body *failingReader
		size int64
	}{
		{"read error", &failingReader{n: 100 << 10, err: readErr}, 200 << 10},
		{"short", &failingReader{n: 100 << 10, err: io.EOF}, 100<<10 + 1},
		{"long", &failingReader{n: 100 << 10, err: io.EOF}, 100<<10 - 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSink(t, nil)
			c := dialT(t, testOpts(), s.target)
			tx := newTx("a@x.test", "b@x.test")
			f := *tt.body
			tx.Body, tx.Size = &f, tt.size
			got, err := c.Deliver(context.Background(), tx)
			if err != nil {
				t.Fatalf("Deliver: %v, want per-recipient replies only", err)
			}
			checkReplies(t, got, []want{{0, "", ClassJournal}, {0, "", ClassJournal}})
			if len(s.transactions()) != 0 {
				t.Fatalf("the server saw %d transactions", len(s.transactions()))
			}
			ok := newTx("a@x.test")
			if got, err := c.Deliver(context.Background(), ok); err != nil || got[0].Code != 250 {
				t.Fatalf("next message on the same connection: %v, %v", got, err)
			}
		})
	}
}
