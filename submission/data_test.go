package submission

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// eolStream runs in through an eolWriter, cut into writes at the given
// offsets.
func eolStream(t testing.TB, in []byte, cuts ...int) []byte {
	t.Helper()
	var out bytes.Buffer
	w := &eolWriter{w: &out}
	prev := 0
	for _, c := range append(cuts, len(in)) {
		if n, err := w.Write(in[prev:c]); err != nil || n != c-prev {
			t.Fatalf("Write = %d, %v", n, err)
		}
		prev = c
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// The streaming writer gives normalizeEOL's output however the input is
// cut: at every single point, and a byte at a time.
func TestEOLWriterMatchesNormalizeEOL(t *testing.T) {
	for _, in := range []string{
		"", "a\r\nb\r\n", "a\nb\n", "a\rb\r", "\n.\n", "\r\n.\n", "\n.\r\n", "\r.\r\n",
		"\n\r", "\r\r\n\n", "\r", "\n", "\r\n", "x\r", "\r\r", "\r\n\r", "abc\r\r\r\ndef",
	} {
		want := string(normalizeEOL([]byte(in)))
		for cut := 0; cut <= len(in); cut++ {
			if got := string(eolStream(t, []byte(in), cut)); got != want {
				t.Errorf("%q cut at %d: %q, want %q", in, cut, got, want)
			}
		}
		var cuts []int
		for i := 1; i < len(in); i++ {
			cuts = append(cuts, i)
		}
		if got := string(eolStream(t, []byte(in), cuts...)); got != want {
			t.Errorf("%q a byte at a time: %q, want %q", in, got, want)
		}
	}
}

func FuzzEOLWriter(f *testing.F) {
	for _, s := range []string{"", "a\r\nb", "\n.\n", "\r\n.\n", "\n.\r\n", "\r.\r\n", "\r\r\n\n", "\r"} {
		f.Add([]byte(s), uint16(1), uint16(2))
	}
	f.Fuzz(func(t *testing.T, in []byte, c1, c2 uint16) {
		a, b := int(c1)%(len(in)+1), int(c2)%(len(in)+1)
		if got, want := eolStream(t, in, min(a, b), max(a, b)), normalizeEOL(in); !bytes.Equal(got, want) {
			t.Fatalf("%q cut at %d and %d: %q, want %q", in, min(a, b), max(a, b), got, want)
		}
	})
}

// A write error of the body comes back, and nothing is counted as written
// after it.
func TestEOLWriterError(t *testing.T) {
	boom := errors.New("disk full")
	w := &eolWriter{w: failWriter{boom}}
	if _, err := w.Write([]byte("a\nb")); err != boom {
		t.Errorf("Write = %v, want %v", err, boom)
	}
}

type failWriter struct{ err error }

func (f failWriter) Write([]byte) (int, error) { return 0, f.err }

// TestLargeMessageStreams submits a 20 MiB message and checks that it
// arrived whole, in writes of at most one read buffer, and that the
// server allocated nowhere near its size to receive it.
func TestLargeMessageStreams(t *testing.T) {
	const size = 20 << 20
	cfg := testConfig()
	cfg.MaxMessageSize = 30 << 20
	h := start(t, cfg)
	h.acc.mu.Lock()
	h.acc.hashed = true
	h.acc.mu.Unlock()
	c := h.raw(true)
	c.expect("MAIL FROM:<a@sender.example>", "250 ")
	c.expect("RCPT TO:<b@local.test>", "250 ")
	c.expect("DATA", "354 ")

	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	n := sendMessage(t, c, size) // with bare LFs, so normalization runs
	c.expect("", "250 2.0.0 Ok: queued as ")
	runtime.ReadMemStats(&after)

	msgs := checkAccepted(t, h, 1)
	h.acc.mu.Lock()
	b := h.acc.bodies[0]
	h.acc.mu.Unlock()
	hdr := strings.TrimSuffix(string(msgs[0].body), bodyAfterReceived(t, msgs[0].body))
	want := sha256.New()
	io.WriteString(want, hdr)
	writeMessage(want, size, true)
	if b.hash == nil || !bytes.Equal(b.hash.Sum(nil), want.Sum(nil)) || b.size != msgs[0].env.Size {
		t.Fatalf("body of %d bytes (envelope says %d) differs from the %d sent, normalized", b.size, msgs[0].env.Size, n)
	}
	if b.maxWrite > dataBuffer*2 || b.writes < size/dataBuffer {
		t.Errorf("%d writes into the body, the largest %d bytes: not streamed", b.writes, b.maxWrite)
	}
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("20 MiB submitted: %d writes into the body, %.1f MiB allocated in the process", b.writes, float64(alloc)/(1<<20))
	if alloc > size/2 {
		t.Errorf("%d bytes allocated to receive %d: the message was buffered", alloc, size)
	}
}

// sendMessage writes a message of about size bytes and its final dot to c,
// 64 KiB at a time, and returns the bytes of message sent.
func sendMessage(t *testing.T, c *rawClient, size int) int {
	t.Helper()
	c.conn.SetWriteDeadline(time.Now().Add(waitFor))
	n := writeMessage(c.conn, size, false)
	if _, err := io.WriteString(c.conn, ".\r\n"); err != nil {
		t.Fatal(err)
	}
	return n
}

// writeMessage writes the lines of a test message of about size bytes to
// w, 64 KiB at a time: every tenth line ends in a bare LF, the others in
// CRLF; normalized writes them all with CRLF, as the server stores them.
func writeMessage(w io.Writer, size int, normalized bool) int {
	buf := make([]byte, 0, 64<<10)
	n := 0
	for i := range size / 30 { // lines of less than 30 bytes
		buf = append(buf, "line "...)
		buf = strconv.AppendInt(buf, int64(i), 10)
		buf = append(buf, " of the message"...)
		if i%10 == 0 && !normalized {
			buf = append(buf, '\n')
		} else {
			buf = append(buf, '\r', '\n')
		}
		if len(buf) > cap(buf)-64 {
			w.Write(buf)
			n += len(buf)
			buf = buf[:0]
		}
	}
	w.Write(buf)
	return n + len(buf)
}

// Every DATA that does not end in a 250 aborts its body.
func TestBodyAborted(t *testing.T) {
	cfg := testConfig()
	cfg.MaxLineLength = 1000
	tests := []struct {
		name  string
		setup func(*fakeAcceptor)
		body  string
		want  string // reply prefix; "" when the client hangs up
	}{
		{"too big", nil, bodyOfLen(20000), "552 5.3.4 "},
		{"line too long", nil, strings.Repeat("x", 2000) + "\r\n", "500 5.5.2 "},
		{"acceptor refuses", func(a *fakeAcceptor) { a.setFail(errors.New("journal closed")) }, "x\r\n", "451 4.3.0 "},
		{"body write fails", func(a *fakeAcceptor) {
			a.mu.Lock()
			defer a.mu.Unlock()
			a.failWrite = errors.New("disk full")
		}, "x\r\n", "451 4.3.0 "},
		{"client hangs up", nil, "Subject: cut\r\n\r\nhalf a mess", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := start(t, cfg)
			if tt.setup != nil {
				tt.setup(h.acc)
			}
			c := h.raw(true)
			c.expect("MAIL FROM:<a@sender.example>", "250 ")
			c.expect("RCPT TO:<b@local.test>", "250 ")
			c.expect("DATA", "354 ")
			if tt.want == "" {
				c.send(tt.body)
				c.conn.Close()
			} else {
				c.send(tt.body + ".\r\n")
				c.expect("", tt.want)
			}
			waitUntil(t, "the body to be aborted", func() bool {
				aborted, started := h.acc.aborted()
				return aborted == 1 && started == 1
			})
			checkAccepted(t, h, 0)
		})
	}
}

// waitUntil polls cond until it holds, failing the test after waitFor.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(waitFor); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestPipelinedAfterBody: commands a client pipelines behind the end of a
// body read ahead with it (trackedConn.Read) are run, in order, and both
// bodies arrive whole.
func TestPipelinedAfterBody(t *testing.T) {
	cfg := testConfig()
	cfg.MaxMessageSize = 1 << 20
	h := start(t, cfg)
	c := h.raw(true)
	first := strings.Repeat("first line of the first message\r\n", 3000) // about 100 KiB
	second := "Subject: second\r\n\r\nsecond\r\n"
	c.expect("MAIL FROM:<a@sender.example>", "250 ")
	c.expect("RCPT TO:<b@local.test>", "250 ")
	c.expect("DATA", "354 ")
	c.send(first + ".\r\nMAIL FROM:<c@sender.example>\r\nRCPT TO:<d@local.test>\r\nDATA\r\n")
	for _, want := range []string{"250 2.0.0 Ok: queued as ", "250 ", "250 ", "354 "} {
		if r := c.cmd(""); !strings.HasPrefix(r, want) {
			t.Fatalf("got %q, want %q...", r, want)
		}
	}
	c.send(second + ".\r\n")
	c.expect("", "250 2.0.0 Ok: queued as ")
	msgs := checkAccepted(t, h, 2)
	if got := bodyAfterReceived(t, msgs[0].body); got != first {
		t.Errorf("first body: %d bytes, want %d", len(got), len(first))
	}
	if got := bodyAfterReceived(t, msgs[1].body); got != second || msgs[1].env.From != "c@sender.example" {
		t.Errorf("second message: from %q, body %q", msgs[1].env.From, got)
	}
}
