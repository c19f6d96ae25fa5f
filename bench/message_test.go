package main

import (
	"bufio"
	"bytes"
	"net/mail"
	"strings"
	"testing"
	"time"
)

func TestMessageSizeIsExact(t *testing.T) {
	sent := time.Unix(1_700_000_000, 123456789)
	sizes := []int{minSize, 5120, 64 << 10, 1 << 20}
	for s := minSize; s < minSize+2*lineBytes; s++ { // every remainder of a filler line
		sizes = append(sizes, s)
	}
	for _, rcpts := range []int{1, 3} {
		for _, size := range sizes {
			p, err := newPlan(2000, size, rcpts, 5, 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			g := newGenerator(p)
			for _, id := range []int{0, 7, 1999} {
				msg, err := g.build(nil, id, sent)
				if err != nil {
					t.Fatalf("size %d id %d: %v", size, id, err)
				}
				if len(msg) != size {
					t.Fatalf("size %d id %d: built %d bytes", size, id, len(msg))
				}
				checkWellFormed(t, msg)
			}
		}
	}
}

// checkWellFormed asserts CRLF line ends, no bare CR or LF, no line over 78
// bytes in the body and none starting with a dot, and that net/mail parses
// the message.
func checkWellFormed(t *testing.T, msg []byte) {
	t.Helper()
	if !bytes.HasSuffix(msg, []byte("\r\n")) {
		t.Fatalf("message does not end with CRLF")
	}
	for i, line := range bytes.SplitAfter(msg, []byte("\r\n")) {
		body := bytes.TrimSuffix(line, []byte("\r\n"))
		if bytes.ContainsAny(body, "\r\n") {
			t.Fatalf("line %d has a bare CR or LF: %q", i, line)
		}
		if len(line) > lineBytes || bytes.HasPrefix(line, []byte(".")) {
			t.Fatalf("line %d: %q", i, line)
		}
	}
	m, err := mail.ReadMessage(bytes.NewReader(msg))
	if err != nil {
		t.Fatalf("net/mail: %v", err)
	}
	for _, h := range []string{"From", "To", "Subject", "Date", "Message-Id", hdrID, hdrSent, hdrRun} {
		if m.Header.Get(h) == "" {
			t.Errorf("header %s missing", h)
		}
	}
	if _, err := m.Header.Date(); err != nil {
		t.Errorf("Date: %v", err)
	}
}

func TestMessageHeadersReadBack(t *testing.T) {
	p, _ := newPlan(100, 2048, 1, 1, 0, 0)
	sent := time.Unix(1_700_000_000, 42)
	msg, err := newGenerator(p).build(make([]byte, 0, 16), 57, sent)
	if err != nil {
		t.Fatal(err)
	}
	h, err := parseBenchHeaders(bufio.NewReader(bytes.NewReader(msg)), p.run)
	if err != nil {
		t.Fatal(err)
	}
	want := benchHeaders{ours: true, id: 57, sent: sent.UnixNano()}
	if h != want {
		t.Errorf("read back %+v, want %+v", h, want)
	}
	if !strings.Contains(string(msg), "To: <"+p.addr(57)+">\r\n") {
		t.Errorf("To is not the first recipient:\n%s", msg[:300])
	}
}

func TestMessageTooSmall(t *testing.T) {
	p, _ := newPlan(10, 200, 1, 1, 0, 0)
	if _, err := newGenerator(p).build(nil, 1, time.Now()); err == nil {
		t.Error("a 200-byte message was built")
	}
}
