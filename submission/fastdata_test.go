package submission

import (
	"bytes"
	"io"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// refDotReader is go-smtp v0.25.1's dataReader state machine (data.go),
// transliterated a byte at a time: what scan must match.
func refDotReader(in []byte) (body []byte, used int, end bool) {
	state := dotBeginLine
	for i, c := range in {
		switch state {
		case dotBeginLine:
			if c == '.' {
				state = dotDot
				continue
			}
			if c == '\r' {
				state = dotCR
				break
			}
			state = dotData
		case dotDot:
			if c == '\r' {
				state = dotDotCR
				continue
			}
			state = dotData
		case dotDotCR:
			if c == '\n' {
				return body, i + 1, true
			}
			state = dotData
		case dotCR:
			if c == '\n' {
				state = dotBeginLine
				break
			}
			state = dotData
		case dotData:
			if c == '\r' {
				state = dotCR
			}
		}
		body = append(body, c)
	}
	return body, len(in), false
}

// refLineLimit is go-smtp's lineLimitReader count over in, starting after
// a line end: false when a line goes over limit.
func refLineLimit(in []byte, limit int) bool {
	cur := 1
	for _, c := range in {
		if c == '\n' {
			cur = 0
		}
		cur++
		if cur > limit {
			return false
		}
	}
	return true
}

// scanAll runs a capture over in, cut into pieces of at most piece bytes.
func scanAll(in []byte, piece, limit int) (body []byte, used int, end, linesOK bool) {
	var out bytes.Buffer
	c := &dataCapture{w: &out, lineLimit: limit, line: 1}
	linesOK = true
	for used < len(in) && !end {
		b := in[used:min(used+piece, len(in))]
		n, e := c.scan(b)
		linesOK = linesOK && c.lines(b[:n])
		used, end = used+n, e
	}
	return out.Bytes(), used, end, linesOK
}

func checkScan(t *testing.T, in []byte, piece, limit int) {
	t.Helper()
	body, used, end, ok := scanAll(in, piece, limit)
	rbody, rused, rend := refDotReader(in)
	rok := refLineLimit(in[:rused], limit)
	if !bytes.Equal(body, rbody) || used != rused || end != rend || ok != rok {
		t.Fatalf("%q in pieces of %d: body %q, used %d, end %v, lines ok %v; go-smtp: %q, %d, %v, %v",
			in, piece, body, used, end, ok, rbody, rused, rend, rok)
	}
}

// TestScanMatchesGoSMTP: scan ends the message where go-smtp does and
// delivers the same bytes, whatever the cuts between the socket's reads;
// lines counts as go-smtp's lineLimitReader.
func TestScanMatchesGoSMTP(t *testing.T) {
	cases := []string{
		"", ".\r\n", "a\r\n.\r\n", "..\r\n.\r\n", ".a\r\n.\r\n", ".\rx\r\n.\r\n", ".\r\r\n.\r\n",
		"a\r\r\n.\r\nb", "a\n.\r\n", "a\r\n.\n", "a\r\n.\r\r\n.\r\n", "a\r\n..\r\n\r\n.\r\nMAIL",
		"\r\n.\r\n", "a\r\n. \r\n.\r\n", "a\r.\r\n", strings.Repeat("x", 50) + "\r\n.\r\n",
	}
	for _, c := range cases {
		for piece := 1; piece <= len(c)+1; piece++ {
			checkScan(t, []byte(c), piece, 20)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte("..\r\r\n\naab ")
	for range 20000 {
		in := make([]byte, rng.IntN(64))
		for i := range in {
			in[i] = alphabet[rng.IntN(len(alphabet))]
		}
		checkScan(t, in, 1+rng.IntN(16), 1+rng.IntN(12))
	}
}

// FuzzScan: go test -fuzz FuzzScan ./submission
func FuzzScan(f *testing.F) {
	f.Add([]byte("a\r\n.\r\n"), uint8(3), uint8(10))
	f.Add([]byte(".\r\r\n.\r\n.\rx"), uint8(1), uint8(2))
	f.Fuzz(func(t *testing.T, in []byte, piece, limit uint8) {
		checkScan(t, in, int(piece)+1, int(limit)+1)
	})
}

var queuedID = regexp.MustCompile(`queued as \S+`)

// rawSession runs one connection of a raw conversation: EHLO, MAIL, RCPT,
// DATA, then the stream as it is, then an end of message and QUIT, in
// writes of the given sizes; it returns every reply, ids blanked.
func rawSession(t *testing.T, h *harness, stream []byte, writes []int) []string {
	t.Helper()
	c := h.raw(true)
	c.expect("MAIL FROM:<a@sender.example>", "250 ")
	c.expect("RCPT TO:<b@local.test>", "250 ")
	c.expect("DATA", "354 ")
	// "x" first: the end of the stream may have left go-smtp's state
	// machine anywhere (after a "\r", "\r\r\n" is no line end to it).
	rest := append(append([]byte(nil), stream...), "x\r\n.\r\nQUIT\r\n"...)
	go func() {
		for k := 0; len(rest) > 0; k++ {
			n := min(len(rest), writes[k%len(writes)])
			c.conn.SetWriteDeadline(time.Now().Add(waitFor))
			if _, err := c.conn.Write(rest[:n]); err != nil {
				return // the server closed: what it answered is compared
			}
			rest = rest[n:]
		}
	}()
	var replies []string
	for {
		r, err := c.reply()
		if r != "" {
			replies = append(replies, queuedID.ReplaceAllString(r, "queued as ID"))
		}
		if err != nil {
			return replies
		}
	}
}

// TestFastDataMatchesGoSMTP: the same conversations, over a server that
// reads messages from the socket and one that reads them through go-smtp,
// get the same replies and store the same bodies: random streams of dots,
// line ends and letters, over the size limit and the line length or not,
// cut into writes of random sizes.
func TestFastDataMatchesGoSMTP(t *testing.T) {
	cfg := testConfig()
	cfg.MaxMessageSize = 300
	cfg.MaxLineLength = 40
	fast, slow := start(t, cfg), start(t, cfg)
	slow.srv.slowData.Store(true)
	rng := rand.New(rand.NewPCG(3, 4))
	alphabet := []byte("...\r\r\n\n\naaaaaaaabc ")
	for i := range 150 {
		stream := make([]byte, rng.IntN(400))
		for k := range stream {
			stream[k] = alphabet[rng.IntN(len(alphabet))]
		}
		if i%10 == 0 { // a line over the limit (and the message under the size, see fastdata.go)
			stream = stream[:min(len(stream), 200)]
			at := rng.IntN(len(stream) + 1)
			stream = append(stream[:at:at], append(bytes.Repeat([]byte("z"), 45), stream[at:]...)...)
		}
		// Cut where a line is not over the limit, so that no read the
		// client's writes arrive in holds both the end of the message and
		// a long line: go-smtp refuses such a read whole, message and all,
		// while the capture takes the message (see fastdata.go).
		writes := []int{1 + rng.IntN(len(stream)+20)}
		if i%10 == 0 {
			writes = []int{len(stream) + 20}
		}
		nf, ns := len(fast.acc.messages()), len(slow.acc.messages())
		got := rawSession(t, fast, stream, writes)
		want := rawSession(t, slow, stream, writes)
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("stream %q: replies\n%q\nwant (go-smtp)\n%q", stream, got, want)
		}
		fm, sm := fast.acc.messages()[nf:], slow.acc.messages()[ns:]
		if len(fm) != len(sm) {
			t.Fatalf("stream %q: %d messages stored, go-smtp %d", stream, len(fm), len(sm))
		}
		for k := range fm {
			if g, w := bodyAfterReceived(t, fm[k].body), bodyAfterReceived(t, sm[k].body); g != w {
				t.Fatalf("stream %q: message %d\n%q\nwant (go-smtp)\n%q", stream, k, g, w)
			}
		}
	}
	if fast.srv.captured.Load() == 0 || slow.srv.captured.Load() != 0 {
		t.Errorf("captured %d and %d messages; want some, and none", fast.srv.captured.Load(), slow.srv.captured.Load())
	}
}

// TestFastDataUsed: a message sent with DATA in plain text is read from
// the socket; one sent with BDAT, or with its body in the same write as
// DATA (go-smtp has it buffered), is read through go-smtp, and arrives as
// well.
func TestFastDataUsed(t *testing.T) {
	h := start(t, testConfig())
	c := h.raw(true)
	if r := c.transaction("a@sender.example", []string{"b@local.test"}, "Subject: one\r\n\r\n..dot\r\n"); !strings.HasPrefix(r, "250 ") {
		t.Fatalf("DATA: %q", r)
	}
	if n := h.srv.captured.Load(); n != 1 {
		t.Fatalf("captured %d messages after one DATA, want 1 (did go-smtp rename its reader?)", n)
	}
	c.expect("MAIL FROM:<a@sender.example>", "250 ")
	c.expect("RCPT TO:<b@local.test>", "250 ")
	c.send("BDAT 22 LAST\r\nSubject: two\r\n\r\nbdat\r\n")
	c.expect("", "250 ")
	c.expect("MAIL FROM:<a@sender.example>", "250 ")
	c.expect("RCPT TO:<b@local.test>", "250 ")
	c.send("DATA\r\nSubject: three\r\n\r\n.early\r\n.\r\n")
	c.expect("", "354 ")
	c.expect("", "250 ")
	if n := h.srv.captured.Load(); n != 1 {
		t.Errorf("captured %d messages, want 1: BDAT and a body sent with DATA go through go-smtp", n)
	}
	msgs := checkAccepted(t, h, 3)
	for i, want := range []string{"Subject: one\r\n\r\n.dot\r\n", "Subject: two\r\n\r\nbdat\r\n", "Subject: three\r\n\r\nearly\r\n"} {
		if got := bodyAfterReceived(t, msgs[i].body); got != want {
			t.Errorf("message %d: %q, want %q", i+1, got, want)
		}
	}
}

// TestFastDataLimits: over the size, the message is refused with 552 and
// the session goes on; a line over the limit gets go-smtp's replies and
// the connection closed; a client that goes away mid-message leaves
// nothing stored.
func TestFastDataLimits(t *testing.T) {
	cfg := testConfig()
	cfg.MaxMessageSize = 100
	cfg.MaxLineLength = 50
	h := start(t, cfg)
	c := h.raw(true)
	lines := strings.Repeat("0123456789012345678\r\n", 4) // 84 bytes
	for _, tc := range []struct {
		body string
		want string
	}{
		{lines + "01234567890123\r\n", "552 5.3.4 "},      // 100 bytes: go-smtp refuses the limit itself
		{lines + "0123456789012\r\n", "250 "},             // 99
		{lines + "0123456789012\r\n..\r\n", "552 5.3.4 "}, // 102 after the dot is taken
	} {
		if r := c.transaction("a@sender.example", []string{"b@local.test"}, tc.body); !strings.HasPrefix(r, tc.want) {
			t.Fatalf("a body of %d bytes: %q, want %s", len(tc.body), r, tc.want)
		}
	}
	c.expect("MAIL FROM:<a@sender.example>", "250 ")
	c.expect("RCPT TO:<b@local.test>", "250 ")
	c.expect("DATA", "354 ")
	c.send("short\r\n" + strings.Repeat("x", 60) + "\r\n.\r\n")
	replies := c.closed()
	if len(replies) < 2 || !strings.HasPrefix(replies[0], "500 5.5.2 ") || !strings.HasPrefix(replies[1], "500 5.4.0 Too long line, closing connection") {
		t.Errorf("after a long line: %q", replies)
	}

	c = h.raw(true)
	c.expect("MAIL FROM:<a@sender.example>", "250 ")
	c.expect("RCPT TO:<b@local.test>", "250 ")
	c.expect("DATA", "354 ")
	c.send("Subject: cut\r\n\r\nhalf")
	c.conn.(interface{ CloseWrite() error }).CloseWrite()
	c.closed()
	if n := h.srv.captured.Load(); n != 5 {
		t.Errorf("captured %d messages, want 5", n)
	}
	if msgs := h.acc.messages(); len(msgs) != 1 {
		t.Errorf("%d messages stored, want the one under the limit", len(msgs))
	}
}

// TestDataReaderKind: the capture recognizes go-smtp's DATA reader and no
// other.
func TestDataReaderKind(t *testing.T) {
	s := &session{srv: &Server{}, tc: &trackedConn{}}
	pr, pw := io.Pipe()
	defer pw.Close()
	if s.capturable(pr) || s.capturable(strings.NewReader("x")) || s.capturable(nil) {
		t.Error("a reader other than go-smtp's taken for it")
	}
	var _ = smtp.ErrDataTooLarge
}

// TestFastDataAfterBufferedDot: a client that sends "." or ".\r" with
// DATA, before the 354, leaves go-smtp's reader in the middle of a dot;
// the message then goes through go-smtp, and ends where go-smtp ends it.
func TestFastDataAfterBufferedDot(t *testing.T) {
	for _, tc := range []struct{ early, after, want string }{
		{".", ".\r\n.\r\n", ".\r\n"},
		{".\r", "\n", ""},
		{".", "x\r\n.\r\n", "x\r\n"},
	} {
		var replies [2][]string
		var bodies [2]string
		for k, slow := range []bool{false, true} {
			h := start(t, testConfig())
			h.srv.slowData.Store(slow)
			c := h.raw(true)
			c.expect("MAIL FROM:<a@sender.example>", "250 ")
			c.expect("RCPT TO:<b@local.test>", "250 ")
			c.send("DATA\r\n" + tc.early)
			c.expect("", "354 ")
			c.send(tc.after)
			replies[k] = append(replies[k], queuedID.ReplaceAllString(c.cmd(""), "queued as ID"))
			replies[k] = append(replies[k], c.cmd("NOOP"))
			if msgs := h.acc.messages(); len(msgs) == 1 {
				bodies[k] = bodyAfterReceived(t, msgs[0].body)
			}
			if h.srv.captured.Load() != 0 {
				t.Errorf("%q then %q: captured", tc.early, tc.after)
			}
		}
		if strings.Join(replies[0], "\n") != strings.Join(replies[1], "\n") || bodies[0] != bodies[1] || bodies[1] != tc.want {
			t.Errorf("%q then %q: replies %q, body %q; go-smtp %q, %q; want body %q",
				tc.early, tc.after, replies[0], bodies[0], replies[1], bodies[1], tc.want)
		}
	}
}

// TestCaptureErrorAfterLastBytes: an error read with the bytes a capture
// used to the last is given at the next read, after the end of data.
func TestCaptureErrorAfterLastBytes(t *testing.T) {
	sc := &streamConn{r: bytes.NewReader([]byte("a\r\n.\r\n")), eofWithData: true}
	c := &trackedConn{Conn: sc, last: '\n'}
	var body bytes.Buffer
	c.capture = &dataCapture{w: &body, line: 1}
	p := make([]byte, 16)
	if n, err := c.Read(p); err != nil || string(p[:n]) != ".\r\n" {
		t.Fatalf("first read: %q, %v; want the end of data", p[:n], err)
	}
	if n, err := c.Read(p); n != 0 || err != io.EOF {
		t.Errorf("second read: %q, %v; want EOF", p[:n], err)
	}
	if body.String() != "a\r\n" {
		t.Errorf("body %q", body.String())
	}
}
