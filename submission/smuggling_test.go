package submission

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// TestSmuggling writes the exact bytes of SMTP smuggling attempts: a body
// with a fake end of data followed by a second transaction. The server
// must take it as one message, keep the fake transaction inside it with
// CRLF line ends, and read the next line of the session as a command.
func TestSmuggling(t *testing.T) {
	const smuggled = "MAIL FROM:<evil@sender.example>\r\n" +
		"RCPT TO:<victim@local.test>\r\n" +
		"DATA\r\n" +
		"Subject: smuggled\r\n\r\nB\r\n"
	tests := []struct {
		name string
		seq  string // the fake end of data
		want string // what the message keeps of it
	}{
		{"LF.LF", "\n.\n", "\r\n.\r\n"},
		{"LF.CRLF", "\n.\r\n", "\r\n.\r\n"},
		{"CR.CRLF", "\r.\r\n", "\r\n.\r\n"},
		// After CRLF go-smtp dot-unstuffs (RFC 5321 4.5.2): the dot goes.
		{"CRLF.LF", "\r\n.\n", "\r\n\r\n"},
		{"CRLF.CR", "\r\n.\r", "\r\n"},
		// go-smtp drops ".\r" and then misses the CRLF that follows as a
		// line start: the second dot stays.
		{"CRLF.CR CRLF.LF", "\r\n.\r\r\n.\n", "\r\n\r\n.\r\n"},
		{"bare LF lines", "\nline\n", "\r\nline\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := start(t, testConfig())
			c := h.raw(true)
			c.expect("MAIL FROM:<a@sender.example>", "250 ")
			c.expect("RCPT TO:<b@local.test>", "250 ")
			c.expect("DATA", "354 ")
			c.send("Subject: one\r\n\r\nA" + tt.seq + smuggled + ".\r\n")
			c.expect("", "250 2.0.0 Ok: queued as 0000000000000001")
			// Had the server ended DATA at seq, the next replies would be
			// those of the smuggled MAIL, RCPT, DATA and message.
			c.expect("NOOP", "250 2.0.0 I have successfully done nothing")
			msgs := checkAccepted(t, h, 1)
			want := "Subject: one\r\n\r\nA" + tt.want + smuggled
			if got := bodyAfterReceived(t, msgs[0].body); got != want {
				t.Errorf("body\n got %q\nwant %q", got, want)
			}
			if n := len(msgs[0].env.Rcpts); n != 1 || msgs[0].env.Rcpts[0].Addr != "b@local.test" {
				t.Errorf("recipients %+v", msgs[0].env.Rcpts)
			}
			if strings.Count(string(msgs[0].body), "\n") != strings.Count(string(msgs[0].body), "\r\n") {
				t.Errorf("bare LF kept in %q", msgs[0].body)
			}
		})
	}
}

// TestSmugglingAtReadBoundary places each fake end of data across the
// boundary between two reads of the message (go-smtp fills each
// dataBuffer-sized read), one byte of it after another, so that a CR ends
// one write into the line end normalization and its LF, or not, starts
// the next: the stored message is the same as when the sequence falls
// inside a read.
func TestSmugglingAtReadBoundary(t *testing.T) {
	const smuggled = "MAIL FROM:<evil@sender.example>\r\nRCPT TO:<victim@local.test>\r\nDATA\r\nB\r\n"
	tests := []struct{ seq, want string }{
		{"\n.\n", "\r\n.\r\n"},
		{"\n.\r\n", "\r\n.\r\n"},
		{"\r.\r\n", "\r\n.\r\n"},
		{"\r\n.\n", "\r\n\r\n"},
		{"\r\r\n.\n", "\r\n\r\n.\r\n"},
		{"\r\n", "\r\n"},
		{"\r", "\r\n"},
		{"\n", "\r\n"},
	}
	cfg := testConfig()
	cfg.MaxMessageSize = 200000
	h := start(t, cfg)
	c := h.raw(true)
	n := 0
	for _, tt := range tests {
		for shift := range len(tt.seq) + 1 {
			const head = "Subject: one\r\n\r\n"
			// The byte of seq at index shift is the first of the second read.
			pad := dataBuffer - len(head) - len("A") - shift
			filler := strings.Repeat(strings.Repeat("x", 78)+"\r\n", pad/80) + strings.Repeat("x", pad%80)
			body := head + filler + "A" + tt.seq + smuggled
			if got := c.transaction("a@sender.example", []string{"b@local.test"}, body); !strings.HasPrefix(got, "250 ") {
				t.Fatalf("%q shifted %d: %q", tt.seq, shift, got)
			}
			n++
			msgs := checkAccepted(t, h, n)
			want := head + filler + "A" + tt.want + smuggled
			if got := bodyAfterReceived(t, msgs[n-1].body); got != want {
				t.Errorf("%q shifted %d: stored %q, want %q", tt.seq, shift, got[len(head)+len(filler):], want[len(head)+len(filler):])
			}
		}
	}
}

// A BDAT chunk cut short by the client's closing the connection is not a
// message: go-smtp hands it over as if it were whole, the session sees
// the failed read and journals nothing. A whole chunk is accepted.
func TestTruncatedBDATIsDropped(t *testing.T) {
	h := start(t, testConfig())
	c := h.raw(true)
	c.expect("MAIL FROM:<a@sender.example>", "250 ")
	c.expect("RCPT TO:<b@local.example>", "250 ")
	c.send("BDAT 100 LAST\r\nSubject: cut\r\n\r\nonly part of it")
	c.conn.(*net.TCPConn).CloseWrite()
	c.closed() // the session ends
	time.Sleep(100 * time.Millisecond)
	if msgs := h.acc.messages(); len(msgs) != 0 {
		t.Fatalf("a truncated BDAT chunk was journaled: %q", msgs[0].body)
	}

	body := "Subject: whole\r\n\r\nall of it\r\n"
	c2 := h.raw(true)
	c2.expect("MAIL FROM:<a@sender.example>", "250 ")
	c2.expect("RCPT TO:<b@local.example>", "250 ")
	c2.send(fmt.Sprintf("BDAT %d LAST\r\n%s", len(body), body))
	if r, err := c2.reply(); err != nil || !strings.HasPrefix(r, "250 ") {
		t.Fatalf("whole BDAT chunk: %q, %v; want 250", r, err)
	}
	if msgs := h.acc.messages(); len(msgs) != 1 || !strings.HasSuffix(string(msgs[0].body), body) {
		t.Errorf("journaled %d messages, want the whole chunk", len(h.acc.messages()))
	}
}
