package submission

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/mail"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mtad/mtad/messages"
)

var update = flag.Bool("update", false, "rewrite golden files")

func TestEHLOExtensions(t *testing.T) {
	h := start(t, testConfig())
	c := h.client()
	tests := []struct{ ext, param string }{
		{"PIPELINING", ""},
		{"SIZE", "10000"},
		{"8BITMIME", ""},
		{"SMTPUTF8", ""},
		{"ENHANCEDSTATUSCODES", ""},
		{"DSN", ""},
		{"CHUNKING", ""},        // go-smtp always offers BDAT
		{"LIMITS", "RCPTMAX=3"}, // from MaxRecipients
	}
	for _, tt := range tests {
		t.Run(tt.ext, func(t *testing.T) {
			ok, param := c.Extension(tt.ext)
			if !ok || param != tt.param {
				t.Errorf("Extension(%q) = %v, %q; want true, %q", tt.ext, ok, param, tt.param)
			}
		})
	}
	for _, ext := range []string{"BINARYMIME", "STARTTLS", "AUTH", "REQUIRETLS"} {
		if ok, _ := c.Extension(ext); ok {
			t.Errorf("%s advertised", ext)
		}
	}
}

// TestEHLOTranscript pins the exact EHLO reply (testdata/ehlo.golden).
func TestEHLOTranscript(t *testing.T) {
	h := start(t, testConfig())
	got := h.raw(false).cmd("EHLO client.test") + "\n"
	golden := filepath.Join("testdata", "ehlo.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("EHLO reply:\n%s\nwant:\n%s", got, want)
	}
}

func TestEnvelopeMapping(t *testing.T) {
	base := messages.Envelope{Helo: "client.test", ReceivedFromIP: "127.0.0.1", Source: "trusted"}
	rcpt := func(i uint32, addr string, n messages.Notify, orcpt string) messages.Recipient {
		return messages.Recipient{Index: i, Addr: addr, Notify: n, ORcpt: orcpt}
	}
	tests := []struct {
		name string
		mail string
		rcpt []string
		want messages.Envelope // From, Rcpts and parameters; base fills the rest
	}{
		{
			name: "plain",
			mail: "MAIL FROM:<a@sender.example>",
			rcpt: []string{"RCPT TO:<b@local.test>"},
			want: messages.Envelope{From: "a@sender.example", Rcpts: []messages.Recipient{rcpt(0, "b@local.test", 0, "")}},
		},
		{
			name: "dsn parameters",
			mail: "MAIL FROM:<a@sender.example> SIZE=100 BODY=8bitmime RET=HDRS ENVID=QQ+2BZ",
			rcpt: []string{
				"RCPT TO:<b@remote.example> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;b+2Bx@remote.example",
				"RCPT TO:<c@remote.example> NOTIFY=NEVER",
				"RCPT TO:<d@remote.example> NOTIFY=FAILURE",
			},
			want: messages.Envelope{
				From: "a@sender.example", Body: messages.Body8BitMIME, Ret: messages.RetHdrs, EnvID: "QQ+Z",
				Rcpts: []messages.Recipient{
					rcpt(0, "b@remote.example", messages.NotifySuccess|messages.NotifyDelay, "RFC822;b+x@remote.example"),
					rcpt(1, "c@remote.example", messages.NotifyNever, ""),
					rcpt(2, "d@remote.example", messages.NotifyFailure, ""),
				},
			},
		},
		{
			name: "null sender 7bit full",
			mail: "MAIL FROM:<> BODY=7BIT RET=FULL",
			rcpt: []string{"RCPT TO:<b@local.test>"},
			want: messages.Envelope{Body: messages.Body7Bit, Ret: messages.RetFull, Rcpts: []messages.Recipient{rcpt(0, "b@local.test", 0, "")}},
		},
		{
			name: "smtputf8",
			mail: "MAIL FROM:<ü@sender.example> SMTPUTF8",
			rcpt: []string{"RCPT TO:<δ@dömain.example> ORCPT=utf-8;δ@dömain.example"},
			want: messages.Envelope{From: "ü@sender.example", SMTPUTF8: true,
				Rcpts: []messages.Recipient{rcpt(0, "δ@dömain.example", 0, "UTF-8;δ@dömain.example")}},
		},
		{
			name: "quoted local parts and source route",
			mail: `MAIL FROM:<"john smith"@sender.example>`,
			rcpt: []string{`RCPT TO:<"joe"@local.test>`, `RCPT TO:<@relay.example:"a\"b"@local.test>`},
			want: messages.Envelope{From: `"john smith"@sender.example`,
				Rcpts: []messages.Recipient{rcpt(0, "joe@local.test", 0, ""), rcpt(1, `"a\"b"@local.test`, 0, "")}},
		},
		{
			name: "local part not a dot-string is stored quoted",
			mail: "MAIL FROM:<a..b@sender.example>",
			rcpt: []string{"RCPT TO:<b@local.test>"},
			want: messages.Envelope{From: `"a..b"@sender.example`, Rcpts: []messages.Recipient{rcpt(0, "b@local.test", 0, "")}},
		},
		{
			name: "duplicates kept once",
			mail: "MAIL FROM:<a@sender.example>",
			rcpt: []string{"RCPT TO:<b@local.test> NOTIFY=NEVER", "RCPT TO:<b@LOCAL.TEST>", "RCPT TO:<B@local.test>"},
			want: messages.Envelope{From: "a@sender.example",
				Rcpts: []messages.Recipient{rcpt(0, "b@local.test", messages.NotifyNever, ""), rcpt(1, "B@local.test", 0, "")}},
		},
		{
			name: "address literal",
			mail: "MAIL FROM:<a@[192.0.2.1]>",
			rcpt: []string{"RCPT TO:<b@[IPv6:2001:db8::1]>"},
			want: messages.Envelope{From: "a@[192.0.2.1]", Rcpts: []messages.Recipient{rcpt(0, "b@[IPv6:2001:db8::1]", 0, "")}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := start(t, testConfig())
			c := h.raw(true)
			c.expect(tt.mail, "250 ")
			for _, r := range tt.rcpt {
				c.expect(r, "250 ")
			}
			before := time.Now()
			c.expect("DATA", "354 ")
			c.send("Subject: x\r\n\r\nhello\r\n.\r\n")
			c.expect("", "250 2.0.0 Ok: queued as 0000000000000001")
			msgs := h.acc.messages()
			if len(msgs) != 1 {
				t.Fatalf("accepted %d messages, want 1", len(msgs))
			}
			got := msgs[0].env
			if got.ID != 1 || got.Size != int64(len(msgs[0].body)) || got.Arrival.Before(before) || time.Since(got.Arrival) > waitFor {
				t.Errorf("ID %v, Size %d (body %d), Arrival %v", got.ID, got.Size, len(msgs[0].body), got.Arrival)
			}
			got.ID, got.Size, got.Arrival = 0, 0, time.Time{}
			want := tt.want
			want.Helo, want.ReceivedFromIP, want.Source = base.Helo, base.ReceivedFromIP, base.Source
			if !reflect.DeepEqual(got, want) {
				t.Errorf("envelope\n got %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestMessageSize(t *testing.T) {
	const max = 10000 // testConfig
	tests := []struct {
		name     string
		size     string // SIZE= parameter, if any
		bodyLen  int    // bytes of body before the final CRLF.CRLF
		wantMail string
		wantData string
	}{
		{"declared over", " SIZE=10001", 10, "552 5.3.4 ", ""},
		{"declared at max", " SIZE=10000", 10, "250 ", "250 2.0.0 Ok: queued"},
		{"data over", "", max + 1, "250 ", "552 5.3.4 "},
		{"data far over", "", 3 * max, "250 ", "552 5.3.4 "},
		{"data over, declared small", " SIZE=100", max + 100, "250 ", "552 5.3.4 "},
		// go-smtp v0.25.1 refuses a body of exactly MaxMessageBytes (it
		// cannot read the terminator once the limit is reached): max-1 is
		// the largest DATA accepted.
		{"data at max", "", max, "250 ", "552 5.3.4 "},
		{"data at max-1", "", max - 1, "250 ", "250 2.0.0 Ok: queued"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := start(t, testConfig())
			c := h.raw(true)
			c.expect("MAIL FROM:<a@sender.example>"+tt.size, tt.wantMail)
			if tt.wantData == "" {
				c.expect("NOOP", "250 2.0.0 ")
				checkAccepted(t, h, 0)
				return
			}
			c.expect("RCPT TO:<b@local.test>", "250 ")
			c.expect("DATA", "354 ")
			c.send(bodyOfLen(tt.bodyLen) + ".\r\n")
			c.expect("", tt.wantData)
			c.expect("NOOP", "250 2.0.0 ") // the session goes on
			checkAccepted(t, h, strings.Count(tt.wantData, "250"))
		})
	}
}

// bodyOfLen is n >= 2 bytes of message in lines of at most 81, ending in
// CRLF.
func bodyOfLen(n int) string {
	var b strings.Builder
	for n-b.Len() > 81 {
		b.WriteString(strings.Repeat("x", 78) + "\r\n")
	}
	b.WriteString(strings.Repeat("x", n-b.Len()-2) + "\r\n")
	return b.String()
}

func checkAccepted(t *testing.T, h *harness, want int) []acceptedMsg {
	t.Helper()
	msgs := h.acc.messages()
	if len(msgs) != want {
		t.Fatalf("accepted %d messages, want %d", len(msgs), want)
	}
	return msgs
}

func TestBDAT(t *testing.T) {
	h := start(t, testConfig())
	c := h.raw(true)
	c.expect("MAIL FROM:<a@sender.example>", "250 ")
	c.expect("RCPT TO:<b@local.test>", "250 ")
	c.send("BDAT 9\r\nSubject: ")
	c.expect("", "250 2.0.0 Continue")
	chunk := "x\n\nbare\nlf\r\n"
	c.send(fmt.Sprintf("BDAT %d LAST\r\n%s", len(chunk), chunk))
	c.expect("", "250 2.0.0 Ok: queued as 0000000000000001")
	msgs := checkAccepted(t, h, 1)
	if got, want := bodyAfterReceived(t, msgs[0].body), "Subject: x\r\n\r\nbare\r\nlf\r\n"; got != want {
		t.Errorf("body %q, want %q", got, want)
	}

	// Over the limit. go-smtp discards the refused chunk under the line
	// length limit, so it is sent in lines.
	c.expect("MAIL FROM:<a@sender.example>", "250 ")
	c.expect("RCPT TO:<b@local.test>", "250 ")
	c.send("BDAT 10001 LAST\r\n" + bodyOfLen(10001))
	c.expect("", "552 5.3.4 ")
	c.expect("NOOP", "250 2.0.0 ")
	checkAccepted(t, h, 1)
}

func TestRecipientLimit(t *testing.T) {
	h := start(t, testConfig()) // MaxRecipients 3
	c := h.raw(true)
	c.expect("MAIL FROM:<a@sender.example>", "250 ")
	for i := range 3 {
		c.expect(fmt.Sprintf("RCPT TO:<r%d@local.test>", i), "250 ")
	}
	c.expect("RCPT TO:<r3@local.test>", "452 4.5.3 ")
	c.expect("RCPT TO:<r4@local.test>", "452 4.5.3 ")
	c.expect("DATA", "354 ")
	c.send("\r\n.\r\n")
	c.expect("", "250 2.0.0 Ok: queued")
	if got := len(checkAccepted(t, h, 1)[0].env.Rcpts); got != 3 {
		t.Errorf("%d recipients, want 3", got)
	}
}

func TestCommandErrors(t *testing.T) {
	const mail = "MAIL FROM:<a@sender.example>"
	tests := []struct {
		name  string
		setup []string
		line  string
		want  string
	}{
		{"mail missing bracket", nil, "MAIL FROM:<a@sender.example", "501 5.5.2 "},
		{"mail missing colon", nil, "MAIL FROM<a@sender.example>", "501 5.5.2 "},
		{"mail bad domain", nil, "MAIL FROM:<a@bad..example>", "501 5.1.7 "},
		{"mail domain hyphen", nil, "MAIL FROM:<a@-bad.example>", "501 5.1.7 "},
		{"mail two @", nil, "MAIL FROM:<a@b@sender.example>", "501 5.1.7 "},
		{"mail control in local part", nil, "MAIL FROM:<a\x01b@sender.example>", "501 5.1.7 "},
		{"mail local part too long", nil, "MAIL FROM:<" + strings.Repeat("a", 65) + "@sender.example>", "501 5.1.7 "},
		{"mail unknown BODY", nil, mail + " BODY=FOO", "501 5.5.4 "},
		{"mail bad SIZE", nil, mail + " SIZE=abc", "501 5.5.4 "},
		{"mail BINARYMIME", nil, mail + " BODY=BINARYMIME", "504 5.5.4 "},
		{"mail unknown RET", nil, mail + " RET=ALL", "501 5.5.4 "},
		{"mail bad ENVID", nil, mail + " ENVID=a+2", "501 5.5.4 "},
		{"mail non-ASCII without SMTPUTF8", nil, "MAIL FROM:<ü@sender.example>", "553 5.6.7 "},
		{"mail nested", []string{mail}, mail, "503 5.5.1 "},
		{"rcpt before mail", nil, "RCPT TO:<b@local.test>", "502 5.5.1 "},
		{"rcpt missing bracket", []string{mail}, "RCPT TO:<b@local.test", "501 5.5.2 "},
		{"rcpt null", []string{mail}, "RCPT TO:<>", "501 5.5.2 "},
		{"rcpt bad domain", []string{mail}, "RCPT TO:<b@-bad.local.test>", "501 5.1.3 "},
		{"rcpt two @", []string{mail}, "RCPT TO:<a@b@local.test>", "501 5.1.3 "},
		{"rcpt numeric tld", []string{mail}, "RCPT TO:<b@192.0.2.1>", "501 5.1.3 "},
		{"rcpt bad literal", []string{mail}, "RCPT TO:<b@[300.1.1.1]>", "501 5.1.3 "},
		{"rcpt non-ASCII without SMTPUTF8", []string{mail}, "RCPT TO:<δ@local.test>", "553 5.6.7 "},
		{"rcpt bad NOTIFY", []string{mail}, "RCPT TO:<b@local.test> NOTIFY=SOMETIMES", "501 5.5.4 "},
		{"rcpt NOTIFY NEVER with more", []string{mail}, "RCPT TO:<b@local.test> NOTIFY=NEVER,DELAY", "501 5.5.4 "},
		{"rcpt bad ORCPT", []string{mail}, "RCPT TO:<b@local.test> ORCPT=bogus", "501 5.5.4 "},
		{"rcpt unknown parameter", []string{mail}, "RCPT TO:<b@local.test> FOO=1", "500 5.5.4 "},
		{"data without rcpt", []string{mail}, "DATA", "502 5.5.1 "},
		{"unknown command", nil, "XYZZ", "500 5.5.2 "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := start(t, testConfig())
			c := h.raw(true)
			for _, l := range tt.setup {
				c.expect(l, "250 ")
			}
			c.expect(tt.line, tt.want)
		})
	}
}

func TestRelay(t *testing.T) {
	tests := []struct {
		name       string
		cfg        Config
		rcpt       string
		want       string
		wantSource string
	}{
		{"untrusted to remote", untrustedConfig(), "b@remote.example", "554 5.7.1 ", ""},
		{"untrusted to local", untrustedConfig(), "b@local.test", "250 ", ""},
		{"untrusted to local, other case", untrustedConfig(), "b@LOCAL.Test", "250 ", ""},
		{"untrusted to subdomain of local", untrustedConfig(), "b@sub.local.test", "554 5.7.1 ", ""},
		{"trusted to remote", testConfig(), "b@remote.example", "250 ", "trusted"},
		{"trusted to local", testConfig(), "b@local.test", "250 ", "trusted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := start(t, tt.cfg)
			c := h.raw(true)
			c.expect("MAIL FROM:<a@sender.example>", "250 ")
			c.expect("RCPT TO:<"+tt.rcpt+">", tt.want)
			if !strings.HasPrefix(tt.want, "250") {
				c.expect("DATA", "502 5.5.1 ") // no recipient accepted
				checkAccepted(t, h, 0)
				return
			}
			c.expect("DATA", "354 ")
			c.send("\r\n.\r\n")
			c.expect("", "250 2.0.0 Ok: queued")
			env := checkAccepted(t, h, 1)[0].env
			if env.Source != tt.wantSource || env.ReceivedFromIP != "127.0.0.1" || env.Helo != "client.test" {
				t.Errorf("Source %q ReceivedFromIP %q Helo %q", env.Source, env.ReceivedFromIP, env.Helo)
			}
		})
	}
}

func TestAcceptorFailure(t *testing.T) {
	quota := &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 3, 1}, Message: "Insufficient system storage"}
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"internal error", errors.New("pebble: write /var/lib/mtad/000123.log: no space left"),
			"451 4.3.0 Temporary failure, please try again later"},
		{"smtp error", quota, "452 4.3.1 Insufficient system storage"},
		{"wrapped smtp error", fmt.Errorf("queue quota: %w", quota), "452 4.3.1 Insufficient system storage"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := start(t, testConfig())
			c := h.raw(true)
			h.acc.setFail(tt.err)
			if got := c.transaction("a@sender.example", []string{"b@local.test"}, "\r\n"); got != tt.want {
				t.Errorf("reply %q, want %q", got, tt.want)
			}
			checkAccepted(t, h, 0)
			if !strings.Contains(h.logs.String(), "msgid=0000000000000001") {
				t.Errorf("failure not logged with msgid:\n%s", h.logs)
			}
			h.acc.setFail(nil) // the client retries in the same session
			got := c.transaction("a@sender.example", []string{"b@local.test"}, "\r\n")
			if got != "250 2.0.0 Ok: queued as 0000000000000002" {
				t.Errorf("retry: %q", got)
			}
			checkAccepted(t, h, 1)
		})
	}
}

// TestReplyAfterAccept: the 250 is not sent while Accept has not returned.
func TestReplyAfterAccept(t *testing.T) {
	h := start(t, testConfig())
	entered, release := h.acc.holdNext()
	defer release()
	c := h.raw(true)
	c.expect("MAIL FROM:<a@sender.example>", "250 ")
	c.expect("RCPT TO:<b@local.test>", "250 ")
	c.expect("DATA", "354 ")
	c.send("Subject: x\r\n\r\nx\r\n.\r\n")
	select {
	case <-entered:
	case <-time.After(waitFor):
		t.Fatal("Accept not called")
	}
	// Accept is blocked: any byte from the server now would be a reply
	// sent before the message was durable.
	c.conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if b, err := c.r.ReadByte(); err == nil {
		t.Fatalf("server replied before Accept returned: %q", b)
	} else if ne := (net.Error)(nil); !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("read: %v", err)
	}
	checkAccepted(t, h, 0)
	release()
	c.expect("", "250 2.0.0 Ok: queued as 0000000000000001")
	checkAccepted(t, h, 1)
}

var receivedRE = regexp.MustCompile(`^Received: from (\S+) \((\S+)\)\r\n` +
	`\tby mx\.test with (\S+) id ([0-9a-f]{16});\r\n` +
	`\t([^\r\n]+)\r\n`)

func TestReceivedHeader(t *testing.T) {
	tests := []struct {
		name, helo, mail, from, proto string
	}{
		{"esmtp", "client.test", "MAIL FROM:<a@sender.example>", "client.test", "ESMTP"},
		{"utf8", "client.test", "MAIL FROM:<a@sender.example> SMTPUTF8", "client.test", "UTF8SMTP"},
		{"address literal helo", "[127.0.0.1]", "MAIL FROM:<a@sender.example>", "[127.0.0.1]", "ESMTP"},
		{"bad helo", "x;y(z", "MAIL FROM:<a@sender.example>", "unknown", "ESMTP"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := start(t, testConfig())
			c := h.raw(false)
			c.expect("EHLO "+tt.helo, "250-")
			c.expect(tt.mail, "250 ")
			c.expect("RCPT TO:<b@local.test>", "250 ")
			c.expect("DATA", "354 ")
			c.send("Subject: x\r\n\r\nx\r\n.\r\n")
			c.expect("", "250 ")
			msg := checkAccepted(t, h, 1)[0]
			m := receivedRE.FindSubmatch(msg.body)
			if m == nil {
				t.Fatalf("no Received header in %q", msg.body)
			}
			if string(m[1]) != tt.from || string(m[2]) != "[127.0.0.1]" || string(m[3]) != tt.proto || string(m[4]) != msg.env.ID.String() {
				t.Errorf("header %q", m[0])
			}
			date, err := mail.ParseDate(string(m[5]))
			if err != nil || !date.Equal(msg.env.Arrival.Truncate(time.Second)) {
				t.Errorf("date %q (%v), arrival %v", m[5], err, msg.env.Arrival)
			}
			if msg.env.Helo != tt.helo {
				t.Errorf("Helo %q, want %q", msg.env.Helo, tt.helo)
			}
		})
	}
}

// TestListeners serves two listeners at once, IPv4 and IPv6 loopback when
// the host has it.
func TestListeners(t *testing.T) {
	acc := &fakeAcceptor{}
	srv := New(testConfig(), acc, nil)
	addrs := []string{"127.0.0.1:0", "127.0.0.1:0", "[::1]:0"}
	done := make(chan error, len(addrs))
	var dialed []string
	for _, a := range addrs {
		l, err := net.Listen("tcp", a)
		if err != nil {
			t.Logf("skipping %s: %v", a, err)
			continue
		}
		dialed = append(dialed, l.Addr().String())
		go func() { done <- srv.Serve(l) }()
	}
	for _, a := range dialed {
		c, err := smtp.Dial(a)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.SendMail("a@sender.example", []string{"b@local.test"}, strings.NewReader("Subject: x\r\n\r\nx\r\n")); err != nil {
			t.Errorf("%s: %v", a, err)
		}
		c.Close()
	}
	if err := srv.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	for range dialed {
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}
	if len(acc.messages()) != len(dialed) {
		t.Errorf("accepted %d, want %d", len(acc.messages()), len(dialed))
	}
}

// TestLongLine: a message line over MaxLineLength is refused and go-smtp
// closes the connection; nothing is accepted.
func TestLongLine(t *testing.T) {
	h := start(t, testConfig()) // MaxLineLength 4096 by default
	c := h.raw(true)
	c.expect("MAIL FROM:<a@sender.example>", "250 ")
	c.expect("RCPT TO:<b@local.test>", "250 ")
	c.expect("DATA", "354 ")
	c.send("Subject: x\r\n\r\n" + strings.Repeat("x", 5000) + "\r\n.\r\n")
	got := c.closed()
	if len(got) < 1 || got[0] != "500 5.5.2 Line too long" {
		t.Errorf("read %q, want 500 5.5.2 then close", got)
	}
	checkAccepted(t, h, 0)
}
