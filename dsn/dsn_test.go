package dsn

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mtad/mtad/messages"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

var (
	testNow     = time.Date(2026, 3, 2, 15, 4, 5, 0, time.UTC)
	testArrival = testNow.Add(-26 * time.Hour)
	testLast    = testNow.Add(-time.Minute)
)

const testOriginal = "Received: from client.example.org (client.example.org [192.0.2.10])\r\n" +
	"\tby mta.example.org with ESMTP id 00000000000004d2\r\n" +
	"From: Alice <alice@example.org>\r\n" +
	"To: Bob <bob@example.net>, Carol <carol@example.com>\r\n" +
	"Subject: Lunch on Friday\r\n" +
	"Date: Sun, 01 Mar 2026 13:04:05 +0000\r\n" +
	"Message-ID: <lunch.42@example.org>\r\n" +
	"MIME-Version: 1.0\r\n" +
	"Content-Type: text/plain; charset=us-ascii\r\n" +
	"\r\n" +
	"Shall we meet at noon?\r\n" +
	"\r\n" +
	"Alice\r\n"

func testEnvelope(ret messages.Ret) *messages.Envelope {
	return &messages.Envelope{ID: 1234, From: "alice@example.org", Arrival: testArrival, Ret: ret, Body: messages.Body7Bit}
}

func testReport(env *messages.Envelope, rcpts ...Recipient) Report {
	return Report{ReportingMTA: "mta.example.org", Envelope: env, Recipients: rcpts,
		Original: []byte(testOriginal), Now: testNow}
}

var (
	bobFailed = Recipient{Addr: "bob@example.net", Action: Failed, RemoteMTA: "mx1.example.net", LastAttempt: testLast,
		Reply: messages.Reply{Code: 550, Enhanced: "5.1.1", Text: "<bob@example.net>: Recipient address rejected: User unknown in virtual mailbox table", Class: "rcpt"}}
	carolDelayed = Recipient{Addr: "carol@example.com", Action: Delayed, RemoteMTA: "dns; mx.example.com", LastAttempt: testLast,
		WillRetryUntil: testArrival.Add(5 * 24 * time.Hour),
		Reply:          messages.Reply{Code: 451, Enhanced: "4.7.1", Text: "Greylisted, please try again in 300 seconds", Class: "rcpt"}}
)

// goldens are the DSNs kept under testdata/, one per shape.
func goldens() map[string]Report {
	mixedEnv := testEnvelope(messages.RetHdrs)
	mixedEnv.EnvID = "QQ314159"
	mixedBob, mixedCarol := bobFailed, carolDelayed
	mixedBob.ORcpt = "rfc822;Bob.Smith@example.org"
	mixedCarol.ORcpt = "rfc822;carol@example.com"
	mixedCarol.RemoteMTA = "mx.example.com"
	mixedCarol.Reply = messages.Reply{Text: "dial tcp 10.0.0.5:25: connect: connection refused", Class: "connection"}

	utf8Env := testEnvelope(messages.RetHdrs)
	utf8Env.From, utf8Env.SMTPUTF8, utf8Env.Body = "andré@example.org", true, messages.Body8BitMIME
	utf8Rcpt := Recipient{Addr: "jörg@bücher.example", ORcpt: `utf-8;j\x{F6}rg@b\x{FC}cher.example`, Action: Failed,
		RemoteMTA: "mx.xn--bcher-kva.example", LastAttempt: testLast,
		Reply: messages.Reply{Code: 550, Enhanced: "5.1.1", Text: "Empfänger unbekannt", Class: "rcpt"}}
	utf8Report := testReport(utf8Env, utf8Rcpt)
	utf8Report.Original = []byte("From: André <andré@example.org>\r\nTo: jörg@bücher.example\r\n" +
		"Subject: Grüße\r\nMessage-ID: <gruss.1@example.org>\r\n\r\nHallo Jörg!\r\n")

	tooBig := testReport(testEnvelope(messages.RetFull), bobFailed)
	tooBig.MaxFull = 200

	return map[string]Report{
		"failed":       testReport(testEnvelope(messages.RetHdrs), bobFailed),
		"delayed":      testReport(testEnvelope(messages.RetUnset), carolDelayed),
		"success":      testReport(testEnvelope(messages.RetFull), delivered("bob@example.net", "2.0.0"), relayed()),
		"mixed":        testReport(mixedEnv, mixedBob, mixedCarol),
		"full":         testReport(testEnvelope(messages.RetFull), bobFailed),
		"full-too-big": tooBig,
		"smtputf8":     utf8Report,
	}
}

func delivered(addr, enhanced string) Recipient {
	return Recipient{Addr: addr, Action: Delivered, RemoteMTA: "mx1.example.net", LastAttempt: testLast,
		Reply: messages.Reply{Code: 250, Enhanced: enhanced, Text: "Ok: queued as 4ZxYw12abc", Class: "data"}}
}

func relayed() Recipient {
	return Recipient{Addr: "carol@example.com", ORcpt: "rfc822;carol@example.com", Action: Relayed,
		RemoteMTA: "mx.example.com", LastAttempt: testLast, Reply: messages.Reply{Code: 250, Text: "OK", Class: "data"}}
}

func TestGolden(t *testing.T) {
	for name, r := range goldens() {
		t.Run(name, func(t *testing.T) {
			out, err := Build(r)
			if err != nil {
				t.Fatalf("Build: %v", err)
			}
			checkDSN(t, out, r)
			path := filepath.Join("testdata", name+".golden")
			if *update {
				if err := os.WriteFile(path, out, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(out, want) {
				t.Errorf("Build output differs from %s (run with -update to accept):\n%s", path, out)
			}
		})
	}
}

func TestDeterministic(t *testing.T) {
	r := goldens()["mixed"]
	a, _ := Build(r)
	b, _ := Build(r)
	if !bytes.Equal(a, b) {
		t.Error("two Builds of one Report differ")
	}
	r.Now = r.Now.Add(time.Nanosecond)
	c, _ := Build(r)
	if msgID(t, a) == msgID(t, c) {
		t.Error("Message-ID did not change with Now")
	}
}

func TestWanted(t *testing.T) {
	const (
		never   = messages.NotifyNever
		success = messages.NotifySuccess
		failure = messages.NotifyFailure
		delay   = messages.NotifyDelay
	)
	tests := []struct {
		notify messages.Notify
		action Action
		want   bool
	}{
		{0, Failed, true},
		{0, Delayed, true},
		{0, Delivered, false},
		{0, Relayed, false},
		{0, Expanded, false},
		{never, Failed, false},
		{never, Delayed, false},
		{never, Delivered, false},
		{never | failure, Failed, false},
		{success, Delivered, true},
		{success, Relayed, true},
		{success, Expanded, true},
		{success, Failed, false},
		{success, Delayed, false},
		{failure, Failed, true},
		{failure, Delayed, false},
		{failure, Delivered, false},
		{delay, Delayed, true},
		{delay, Failed, false},
		{success | failure | delay, Failed, true},
		{success | failure | delay, Delayed, true},
		{success | failure | delay, Delivered, true},
		{failure | delay, "bogus", false},
		{0, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.notify.String()+"/"+string(tt.action), func(t *testing.T) {
			if got := Wanted(tt.notify, tt.action); got != tt.want {
				t.Errorf("Wanted(%q, %q) = %v, want %v", tt.notify, tt.action, got, tt.want)
			}
		})
	}
}

func TestBuildErrors(t *testing.T) {
	ok := func() Report { return testReport(testEnvelope(messages.RetHdrs), bobFailed) }
	tests := []struct {
		name   string
		mod    func(*Report)
		target error
	}{
		{"nil envelope", func(r *Report) { r.Envelope = nil }, ErrNoEnvelope},
		{"no recipients", func(r *Report) { r.Recipients = nil }, ErrNoRecipients},
		{"null sender", func(r *Report) { r.Envelope.From = "" }, ErrNullSender},
		{"no reporting mta", func(r *Report) { r.ReportingMTA = "" }, nil},
		{"reporting mta with space", func(r *Report) { r.ReportingMTA = "mta example" }, nil},
		{"CRLF in return path", func(r *Report) { r.Envelope.From = "a@b\r\nBcc: x@y" }, nil},
		{"angle in return path", func(r *Report) { r.Envelope.From = "a@b>, <c@d" }, nil},
		{"non-ASCII return path without SMTPUTF8", func(r *Report) { r.Envelope.From = "andré@example.org" }, nil},
		{"long return path", func(r *Report) { r.Envelope.From = strings.Repeat("a", 600) + "@b" }, nil},
		{"recipient without address", func(r *Report) { r.Recipients[0].Addr = "" }, nil},
		{"unknown action", func(r *Report) { r.Recipients[0].Action = "bounced" }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ok()
			r.Recipients = append([]Recipient(nil), r.Recipients...)
			tt.mod(&r)
			out, err := Build(r)
			if err == nil {
				t.Fatalf("Build succeeded:\n%s", out)
			}
			if tt.target != nil && !errors.Is(err, tt.target) {
				t.Errorf("Build error %v, want %v", err, tt.target)
			}
		})
	}
}

// TestLocalErrorText: the text of a Reply without a code, which may name
// our own addresses or files, is not shown; its class is.
func TestLocalErrorText(t *testing.T) {
	rc := carolDelayed
	rc.Reply = messages.Reply{Text: "reading /var/lib/mtad/journal/000123.sst from 10.1.2.3: EIO", Class: "journal"}
	out := build(t, testReport(testEnvelope(messages.RetHdrs), rc))
	for _, leak := range []string{"/var/lib", "10.1.2.3", "Diagnostic-Code"} {
		if bytes.Contains(out, []byte(leak)) {
			t.Errorf("DSN contains %q:\n%s", leak, out)
		}
	}
	if !bytes.Contains(out, []byte("A problem in this mail system prevented delivery.")) {
		t.Errorf("no description of the local error:\n%s", out)
	}
	if !bytes.Contains(out, []byte("Status: 4.0.0")) {
		t.Errorf("want Status 4.0.0 for a delayed local error:\n%s", out)
	}
}

func TestStatus(t *testing.T) {
	tests := []struct {
		name string
		rc   Recipient
		want string
	}{
		{"given", Recipient{Action: Failed, Status: "5.4.7", Reply: messages.Reply{Code: 451, Enhanced: "4.4.1"}}, "5.4.7"},
		{"bad given", Recipient{Action: Failed, Status: "5.01.1", Reply: messages.Reply{Code: 550, Enhanced: "5.1.1"}}, "5.1.1"},
		{"enhanced", Recipient{Action: Failed, Reply: messages.Reply{Code: 550, Enhanced: "5.7.1"}}, "5.7.1"},
		{"enhanced of another class", Recipient{Action: Failed, Reply: messages.Reply{Code: 550, Enhanced: "4.7.1"}}, "5.0.0"},
		{"malformed enhanced", Recipient{Action: Failed, Reply: messages.Reply{Code: 554, Enhanced: "5.7"}}, "5.0.0"},
		{"code only", Recipient{Action: Delayed, Reply: messages.Reply{Code: 421}}, "4.0.0"},
		{"success", Recipient{Action: Delivered, Reply: messages.Reply{Code: 250}}, "2.0.0"},
		{"connection", Recipient{Action: Delayed, Reply: messages.Reply{Class: "connection"}}, "4.4.1"},
		{"dns expired", Recipient{Action: Failed, Reply: messages.Reply{Class: "dns"}}, "4.4.3"},
		{"unknown local failed", Recipient{Action: Failed, Reply: messages.Reply{Class: "config"}}, "5.0.0"},
		{"unknown local delayed", Recipient{Action: Delayed}, "4.0.0"},
		{"odd code", Recipient{Action: Failed, Reply: messages.Reply{Code: 354}}, "5.0.0"},
		{"local with enhanced", Recipient{Action: Failed, Reply: messages.Reply{Enhanced: "5.3.4", Class: "size"}}, "5.3.4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.rc.status(); got != tt.want {
				t.Errorf("status() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestFieldEncoding(t *testing.T) {
	tests := []struct {
		name, got, want string
	}{
		{"printable envid", fieldText("QQ314159", false), "QQ314159"},
		{"envid with space", fieldText("a b+c", false), "a+20b+2Bc"},
		{"envid with CRLF", fieldText("x\r\nBcc: y", false), "x+0D+0ABcc:+20y"},
		{"utf-8 envid, utf8 allowed", fieldText("größe", true), "größe"},
		{"utf-8 envid, ASCII only", fieldText("ö", false), "+C3+B6"},
		{"rfc822 address", typedAddress("rfc822", "bob+tag@example.net", false), "rfc822; bob+tag@example.net"},
		{"rfc822 with space", typedAddress("rfc822", `"b b"@x`, false), `rfc822; "b+20b"@x`},
		{"utf-8 address, utf8 allowed", typedAddress("rfc822", "jörg@x", true), "utf-8; jörg@x"},
		{"utf-8 address, ASCII only", typedAddress("rfc822", "jörg+1@x", false), `utf-8; j\x{F6}rg\x{2B}1@x`},
		{"utf-8 address with control", typedAddress("rfc822", "jö\nrg@x", true), `utf-8; j\x{F6}\x{0A}rg@x`},
		{"other type, non-ASCII", typedAddress("x400", "ö", true), "x400; +C3+B6"},
		{"orcpt rfc822", originalRecipient("rfc822;Bob@example.org", false), "rfc822; Bob@example.org"},
		{"orcpt utf-8 up-converted", originalRecipient(`utf-8;j\x{F6}rg@x`, true), "utf-8; jörg@x"},
		{"orcpt utf-8 kept", originalRecipient(`utf-8;j\x{F6}rg@x`, false), `utf-8; j\x{F6}rg@x`},
		{"orcpt utf-8 malformed", originalRecipient(`utf-8;j\x{F6rg@x`, true), `utf-8; j\x{F6rg@x`},
		{"orcpt without type", originalRecipient("bob@x", false), "unknown; bob@x"},
		{"orcpt with CRLF", originalRecipient("rfc822;a@b\r\nX: y", false), "rfc822; a@b+0D+0AX:+20y"},
		{"clean", clean(" a\r\n\tb\x00c\u2028d\u202ee ", false), "a b c de"},
		{"clean non-ASCII", clean("Empfänger", false), "Empf?nger"},
		{"clean invalid UTF-8", clean("a\xffb", true), "a\uFFFDb"},
		{"remote host", remoteHost("dns; mx1.example.net"), "mx1.example.net"},
		{"remote host with CRLF", remoteHost("mx1\r\nX: y"), "mx1X:y"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %q, want %q", tt.got, tt.want)
			}
		})
	}
}

// TestFolding: long reply text folds at spaces within 78 columns and comes
// back whole when unfolded; a run without spaces stays within 998.
func TestFolding(t *testing.T) {
	rc := bobFailed
	rc.Reply.Text = strings.Repeat("word ", 60) + strings.Repeat("x", 2500)
	out := build(t, testReport(testEnvelope(messages.RetHdrs), rc))
	blocks := statusBlocksOf(t, out)
	got := blocks[1].Get("Diagnostic-Code")
	if want := "smtp; 550 5.1.1 " + strings.Repeat("word ", 60) + "x"; !strings.HasPrefix(got, want) {
		t.Errorf("Diagnostic-Code unfolds to %.120q..., want prefix %.120q", got, want)
	}
	if n := strings.Count(got, "x"); n != 2500 {
		t.Errorf("Diagnostic-Code has %d x, want 2500", n)
	}
	for _, line := range strings.Split(string(out), "\r\n") {
		if strings.HasPrefix(line, " word") && len(line) > 78 {
			t.Errorf("folded line of %d characters: %q", len(line), line)
		}
	}
}

// TestBoundaryCollision: an original that holds the boundary Build would
// pick gets another.
func TestBoundaryCollision(t *testing.T) {
	r := testReport(testEnvelope(messages.RetFull), bobFailed)
	stem := "=_" + r.unique()
	r.Original = []byte("Subject: x\r\n\r\n--" + stem + "\r\n--" + stem + ".0--\r\n")
	out := build(t, r)
	checkDSN(t, out, r)
	if bytes.Contains(out, []byte("boundary=\""+stem+"\"")) {
		t.Error("boundary is the one the content holds")
	}
}

// TestReturned: RET=FULL returns the whole message only when a recipient
// failed (RFC 3461 section 4.3); a DSN of delays gets headers.
func TestReturned(t *testing.T) {
	tests := []struct {
		name  string
		ret   messages.Ret
		rcpt  Recipient
		max   int
		want  string
		cut   bool
		whole bool
	}{
		{"hdrs", messages.RetHdrs, bobFailed, 0, "text/rfc822-headers", false, false},
		{"unset", messages.RetUnset, bobFailed, 0, "text/rfc822-headers", false, false},
		{"full", messages.RetFull, bobFailed, 0, "message/rfc822", false, true},
		{"full but delayed", messages.RetFull, carolDelayed, 0, "text/rfc822-headers", false, false},
		{"full over max", messages.RetFull, bobFailed, 100, "text/rfc822-headers", true, false},
		{"full at max", messages.RetFull, bobFailed, len(testOriginal), "message/rfc822", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := testReport(testEnvelope(tt.ret), tt.rcpt)
			r.MaxFull = tt.max
			parts := partsOf(t, build(t, r))
			if len(parts) != 3 || parts[2].contentType != tt.want {
				t.Fatalf("parts %v, want a third of type %s", parts, tt.want)
			}
			if got := bytes.Contains(parts[0].body, []byte("only its header section")); got != tt.cut {
				t.Errorf("human part says the message was too big: %v, want %v", got, tt.cut)
			}
			if got := bytes.Equal(parts[2].body, []byte(testOriginal)); got != tt.whole {
				t.Errorf("third part is the whole original: %v, want %v", got, tt.whole)
			}
		})
	}
}

func TestHeaderSection(t *testing.T) {
	tests := []struct {
		name, msg string
		max       int
		want      string
	}{
		{"crlf", "A: 1\r\nB: 2\r\n\r\nbody\r\n\r\nmore", 1000, "A: 1\r\nB: 2\r\n"},
		{"bare lf", "A: 1\nB: 2\n\nbody", 1000, "A: 1\nB: 2\n"},
		{"no body", "A: 1\r\nB: 2\r\n", 1000, "A: 1\r\nB: 2\r\n"},
		{"no header", "\r\nbody\r\n\r\n", 1000, ""},
		{"cut at a field", "A: 1\r\nB: 2\r\n 3\r\nC: 4\r\n\r\n", 14, "A: 1\r\n"},
		{"cut keeps whole fields", "A: 1\r\nB: 2\r\n 3\r\nC: 4\r\n\r\n", 17, "A: 1\r\nB: 2\r\n 3\r\n"},
		{"one field over max", "A: 12345678\r\n\r\n", 5, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(headerSection([]byte(tt.msg), tt.max)); got != tt.want {
				t.Errorf("headerSection = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestEncoding(t *testing.T) {
	tests := []struct{ data, want string }{
		{"a\r\nb\r\n", "7bit"},
		{"ä\r\n", "8bit"},
		{"a\nb", "binary"},
		{"a\rb", "binary"},
		{"a\x00b", "binary"},
		{strings.Repeat("a", 998) + "\r\n", "7bit"},
		{strings.Repeat("a", 999) + "\r\n", "binary"},
		{"", "7bit"},
	}
	for _, tt := range tests {
		if got := encoding([]byte(tt.data)); got != tt.want {
			t.Errorf("encoding(%.20q) = %s, want %s", tt.data, got, tt.want)
		}
	}
}

func TestNoOriginal(t *testing.T) {
	r := testReport(testEnvelope(messages.RetFull), bobFailed)
	r.Original = nil
	out := build(t, r)
	checkDSN(t, out, r)
	if bytes.Contains(out, []byte("References:")) || bytes.Contains(out, []byte("attached")) {
		t.Errorf("DSN without an original refers to it:\n%s", out)
	}
}

func build(t *testing.T, r Report) []byte {
	t.Helper()
	out, err := Build(r)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	return out
}
