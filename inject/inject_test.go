package inject

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"

	"github.com/mtad/mtad/messages"
)

const rawMsg = "From: a@example.org\r\nTo: b@example.com\r\nSubject: hi\r\n\r\nhello\r\n"

// A raw message is journaled with its envelope from the request headers,
// a Received header first, and answered per recipient.
func TestRawInjection(t *testing.T) {
	h := start(t, testConfig())
	a := h.raw(rawMsg,
		"Mtad-From", "<a@example.org>",
		"Mtad-To", "b@example.com",
		"Mtad-To", `c@example.com, "d, e"@Example.COM`,
		"Mtad-To", "b@EXAMPLE.com", // a duplicate: domains compare without case
		"Mtad-Notify", "failure, delay",
		"Mtad-Ret", "hdrs",
		"Mtad-Envid", "QQ314159",
		"Mtad-Priority", "-3",
		"Mtad-Meta-Tenant", "acme",
		"Mtad-Meta-Campaign_id", "bf-2026")
	if a.status != http.StatusAccepted {
		t.Fatalf("answer %d %+v", a.status, a.err)
	}
	m := h.acc.only(t)
	env := m.env
	if a.ok.ID != env.ID.String() || a.ok.Accepted != 3 || a.ok.Rejected != 0 {
		t.Errorf("answer %+v for %v", a.ok, env.ID)
	}
	var addrs []string
	for i, rc := range env.Rcpts {
		addrs = append(addrs, rc.Addr)
		if rc.Index != uint32(i) || rc.Notify != messages.NotifyFailure|messages.NotifyDelay {
			t.Errorf("rcpt %d: %+v", i, rc)
		}
		if a.ok.Recipients[i] != (RecipientResult{Addr: rc.Addr, Status: "accepted"}) {
			t.Errorf("answer rcpt %d: %+v", i, a.ok.Recipients[i])
		}
	}
	if got := strings.Join(addrs, " "); got != `b@example.com c@example.com "d, e"@Example.COM` {
		t.Errorf("rcpts %s", got)
	}
	if env.From != "a@example.org" || env.Ret != messages.RetHdrs || env.EnvID != "QQ314159" || env.Priority != -3 ||
		env.Source != "http" || env.ReceivedFromIP != "127.0.0.1" || env.Helo != "" ||
		env.Body != messages.Body7Bit || env.SMTPUTF8 || env.RequireTLS || env.Size != int64(len(m.body)) {
		t.Errorf("envelope %+v", env)
	}
	if fmt.Sprint(env.Metadata) != "map[campaign_id:bf-2026 tenant:acme]" {
		t.Errorf("metadata %v", env.Metadata)
	}
	received := regexp.MustCompile(`^Received: from \[127\.0\.0\.1\]\r\n\tby mx\.test with HTTP id ` + env.ID.String() +
		`;\r\n\t[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} [+-]\d{4}\r\n`)
	loc := received.FindIndex(m.body)
	if loc == nil {
		t.Fatalf("no Received header: %q", m.body)
	}
	if got := string(m.body[loc[1]:]); got != rawMsg {
		t.Errorf("body after Received %q, want %q", got, rawMsg)
	}
}

// The null reverse-path is an empty Mtad-From, or <>.
func TestRawNullSender(t *testing.T) {
	for _, from := range []string{"", "<>"} {
		h := start(t, testConfig())
		if a := h.raw(rawMsg, "Mtad-From", from, "Mtad-To", "b@example.com"); a.status != http.StatusAccepted {
			t.Fatalf("Mtad-From %q: %d %+v", from, a.status, a.err)
		}
		if env := h.acc.only(t).env; env.From != "" {
			t.Errorf("Mtad-From %q: From %q", from, env.From)
		}
	}
}

// Bare LF and bare CR become CRLF, as in SMTP submission, and the message
// ends with CRLF.
func TestRawLineEnds(t *testing.T) {
	h := start(t, testConfig())
	h.raw("Subject: x\n\nline1\rline2\r\n.\nend", "Mtad-From", "a@example.org", "Mtad-To", "b@example.com")
	body := string(h.acc.only(t).body)
	if _, after, _ := strings.Cut(body, "Subject:"); after != " x\r\n\r\nline1\r\nline2\r\n.\r\nend\r\n" {
		t.Errorf("body %q", body)
	}
}

// 8-bit bytes make the body 8BITMIME; UTF-8 in the header section or an
// address makes the message SMTPUTF8; legacy 8-bit headers do not.
func TestRawEightBit(t *testing.T) {
	tests := []struct {
		name, msg, from, to string
		body                messages.BodyType
		utf8                bool
	}{
		{"ascii", rawMsg, "a@example.org", "b@example.com", messages.Body7Bit, false},
		{"latin1 body", "Subject: x\r\n\r\ncaf\xe9\r\n", "a@example.org", "b@example.com", messages.Body8BitMIME, false},
		{"utf8 body", "Subject: x\r\n\r\ncafé\r\n", "a@example.org", "b@example.com", messages.Body8BitMIME, false},
		{"latin1 header", "Subject: caf\xe9\r\n\r\nx\r\n", "a@example.org", "b@example.com", messages.Body8BitMIME, false},
		{"utf8 header", "Subject: café\r\n\r\nx\r\n", "a@example.org", "b@example.com", messages.Body8BitMIME, true},
		{"utf8 sender", rawMsg, "jöran@example.org", "b@example.com", messages.Body7Bit, true},
		{"utf8 recipient", rawMsg, "a@example.org", "b@exämple.com", messages.Body7Bit, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := start(t, testConfig())
			if a := h.raw(tt.msg, "Mtad-From", tt.from, "Mtad-To", tt.to); a.status != http.StatusAccepted {
				t.Fatalf("%d %+v", a.status, a.err)
			}
			env := h.acc.only(t).env
			if env.Body != tt.body || env.SMTPUTF8 != tt.utf8 {
				t.Errorf("Body %s SMTPUTF8 %v, want %s %v", env.Body, env.SMTPUTF8, tt.body, tt.utf8)
			}
		})
	}
}

// Every refusal of the raw form before the body, with its SMTP reply;
// nothing is journaled.
func TestRawRefusals(t *testing.T) {
	ok := []string{"Mtad-From", "a@example.org", "Mtad-To", "b@example.com"}
	tests := []struct {
		name     string
		hdrs     []string
		status   int
		code     int
		enhanced string
		want     string
	}{
		{"no Mtad-From", []string{"Mtad-To", "b@example.com"}, 400, 501, "5.5.4", "Mtad-From: required"},
		{"two Mtad-From", append(ok, "Mtad-From", "c@example.org"), 400, 501, "5.5.4", "Mtad-From: given 2 times"},
		{"bad sender", []string{"Mtad-From", "a@", "Mtad-To", "b@example.com"}, 400, 501, "5.1.7", `Mtad-From: "a@": missing domain`},
		{"bad recipient", []string{"Mtad-From", "a@example.org", "Mtad-To", "b@example.com, x"}, 400, 501, "5.1.3", `Mtad-To: "x": missing domain`},
		{"bad domain", []string{"Mtad-From", "a@example.org", "Mtad-To", "b@exa_mple.com"}, 400, 501, "5.1.3", "bad address syntax"},
		{"no recipient", []string{"Mtad-From", "a@example.org"}, 400, 554, "5.5.1", "no recipients"},
		{"too many", append(ok, "Mtad-To", "c@x.org,d@x.org,e@x.org,f@x.org,g@x.org"), 400, 452, "4.5.3", "Too many recipients: 6, at most 5"},
		{"requiretls", append(ok, "Mtad-Requiretls", "yes"), 400, 555, "5.5.4", "needs a TLS submission path"},
		{"unknown header", append(ok, "Mtad-Too", "c@example.com"), 400, 501, "5.5.4", "Mtad-Too: unknown header"},
		{"notify", append(ok, "Mtad-Notify", "SUCCESS,SOMETIMES"), 400, 501, "5.5.4", `"SOMETIMES" is not NEVER`},
		{"notify never", append(ok, "Mtad-Notify", "NEVER,DELAY"), 400, 501, "5.5.4", "NEVER goes alone"},
		{"ret", append(ok, "Mtad-Ret", "BODY"), 400, 501, "5.5.4", `Mtad-Ret: "BODY" is not FULL or HDRS`},
		{"envid", append(ok, "Mtad-Envid", "a b"), 400, 501, "5.5.4", "Mtad-Envid"},
		{"priority", append(ok, "Mtad-Priority", "high"), 400, 501, "5.5.4", `Mtad-Priority: "high" is not an integer`},
		{"meta key", append(ok, "Mtad-Meta-Te.nant", "x"), 400, 501, "5.5.4", `metadata "te.nant"`},
		{"meta value", append(ok, "Mtad-Meta-Tenant", strings.Repeat("x", 1025)), 400, 501, "5.5.4", "value of 1025 bytes"},
		{"meta count", append(ok, "Mtad-Meta-A", "1", "Mtad-Meta-B", "2", "Mtad-Meta-C", "3", "Mtad-Meta-D", "4", "Mtad-Meta-E", "5"), 400, 501, "5.5.4", "5 pairs, at most 4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := start(t, testConfig())
			h.raw(rawMsg, tt.hdrs...).wantError(t, tt.status, tt.code, tt.enhanced, tt.want)
			if n := len(h.acc.accepted()); n != 0 {
				t.Errorf("%d messages accepted", n)
			}
		})
	}
}

func TestMethodAndContentType(t *testing.T) {
	h := start(t, testConfig())
	req, _ := http.NewRequest(http.MethodGet, h.srv.URL+"/api/v1/inject", nil)
	a := h.do(req)
	a.wantError(t, http.StatusMethodNotAllowed, 0, "", "use POST")
	if a.header.Get("Allow") != "POST" {
		t.Errorf("Allow %q", a.header.Get("Allow"))
	}
	h.post("text/plain", strings.NewReader(rawMsg)).wantError(t, http.StatusUnsupportedMediaType, 0, "", "use message/rfc822 or application/json")
	h.post("application/json; charset=latin1", strings.NewReader("{}")).wantError(t, http.StatusUnsupportedMediaType, 0, "", "")
}

// A message over MaxMessageSize, Received header included, is refused 413
// (552 5.3.4): announced by Content-Length, or found while reading.
func TestSizeRefusal(t *testing.T) {
	cfg := testConfig()
	h := start(t, cfg)
	env := []string{"Mtad-From", "a@example.org", "Mtad-To", "b@example.com"}
	big := "Subject: x\r\n\r\n" + strings.Repeat("x", int(cfg.MaxMessageSize))
	h.raw(big, env...).wantError(t, 413, 552, "5.3.4", "size")
	// No Content-Length: the body is read up to the limit.
	h.post("message/rfc822", io.MultiReader(strings.NewReader(big)), env...).wantError(t, 413, 552, "5.3.4", "size")
	// Under the limit by itself, over it with the Received header.
	h.raw(big[:cfg.MaxMessageSize-20], env...).wantError(t, 413, 552, "5.3.4", "size")
	h.json(obj{"envelope": obj{"from": "a@example.org", "to": []string{"b@example.com"}}, "raw": big}).
		wantError(t, 413, 552, "5.3.4", "size")
	h.json(obj{"message": obj{"from": "a@example.org", "to": []string{"b@example.com"}, "text": big[:cfg.MaxMessageSize]}}).
		wantError(t, 413, 552, "5.3.4", "size")
	if n := len(h.acc.accepted()); n != 0 {
		t.Errorf("%d messages accepted", n)
	}
	if a := h.raw(big[:cfg.MaxMessageSize-300], env...); a.status != http.StatusAccepted {
		t.Errorf("a message under the limit: %d %+v", a.status, a.err)
	}
}

// Recipients that CheckRcpt refuses are answered one by one and left out;
// when none is left nothing is journaled.
func TestCheckRcpt(t *testing.T) {
	cfg := testConfig()
	var checked []string
	cfg.CheckRcpt = func(rcpt string) error {
		checked = append(checked, rcpt)
		switch {
		case strings.HasPrefix(rcpt, "nobody@"):
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "Mailbox unknown"}
		case strings.HasPrefix(rcpt, "broken@"):
			return errors.New("maildir: stat /var/mail/secret: permission denied")
		}
		return nil
	}
	h := start(t, cfg)
	a := h.raw(rawMsg, "Mtad-From", "a@example.org", "Mtad-To", "nobody@local.test, b@example.com, broken@local.test, c@example.com")
	if a.status != http.StatusAccepted || a.ok.Accepted != 2 || a.ok.Rejected != 2 {
		t.Fatalf("answer %d %+v %+v", a.status, a.ok, a.err)
	}
	want := []RecipientResult{
		{Addr: "nobody@local.test", Status: "rejected", Code: 550, Enhanced: "5.1.1", Message: "Mailbox unknown"},
		{Addr: "b@example.com", Status: "accepted"},
		{Addr: "broken@local.test", Status: "rejected", Code: 451, Enhanced: "4.3.0", Message: "Temporary failure, please try again later"},
		{Addr: "c@example.com", Status: "accepted"},
	}
	if fmt.Sprint(a.ok.Recipients) != fmt.Sprint(want) {
		t.Errorf("recipients %+v\nwant %+v", a.ok.Recipients, want)
	}
	env := h.acc.only(t).env
	if len(env.Rcpts) != 2 || env.Rcpts[0].Addr != "b@example.com" || env.Rcpts[1].Addr != "c@example.com" || env.Rcpts[1].Index != 1 {
		t.Errorf("envelope rcpts %+v", env.Rcpts)
	}

	a = h.raw(rawMsg, "Mtad-From", "a@example.org", "Mtad-To", "nobody@local.test", "Mtad-To", "broken@local.test")
	a.wantError(t, http.StatusUnprocessableEntity, 554, "5.5.1", "no valid recipients")
	if len(a.err.Recipients) != 2 || a.err.Recipients[0].Code != 550 || a.err.Recipients[1].Code != 451 {
		t.Errorf("recipients %+v", a.err.Recipients)
	}
	if n := len(h.acc.accepted()); n != 1 {
		t.Errorf("%d messages accepted, want still 1", n)
	}
}

// Accept's refusals: a quota (4xx) is 429 with Retry-After, a 5xx is 422,
// any other error 503 without its text.
func TestAcceptErrors(t *testing.T) {
	tests := []struct {
		name     string
		err      error
		status   int
		code     int
		enhanced string
		text     string
	}{
		{"quota", fmt.Errorf("queue x: %w", &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 3, 1}, Message: "Queue quota exceeded"}), 429, 452, "4.3.1", "Queue quota exceeded"},
		{"permanent", &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 3, 4}, Message: "Too big for the queue"}, 422, 552, "5.3.4", "Too big for the queue"},
		{"journal", errors.New("pebble: /var/lib/mtad/journal: disk full"), 503, 451, "4.3.0", "journal unavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.RetryAfter = 90e9
			h := start(t, cfg)
			h.acc.setFail(tt.err)
			a := h.raw(rawMsg, "Mtad-From", "a@example.org", "Mtad-To", "b@example.com")
			if a.status != tt.status || fmt.Sprint(a.err) != fmt.Sprint(ErrorResponse{Error: tt.text, Code: tt.code, Enhanced: tt.enhanced}) {
				t.Errorf("got %d %+v", a.status, a.err)
			}
			retry := ""
			if tt.status != 422 {
				retry = "90"
			}
			if got := a.header.Get("Retry-After"); got != retry {
				t.Errorf("Retry-After %q, want %q", got, retry)
			}
		})
	}
}

// TakeMessage is asked after the syntax, recipient and metadata checks,
// before the size; its refusal is the answer.
func TestTakeMessage(t *testing.T) {
	cfg := testConfig()
	var senders []string
	cfg.TakeMessage = func(sender string) error {
		senders = append(senders, sender)
		if sender == "spammer@example.org" {
			return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 7, 1}, Message: "Rate limit exceeded, try again in 20 seconds"}
		}
		return nil
	}
	h := start(t, cfg)
	h.raw(rawMsg, "Mtad-From", "spammer@example.org", "Mtad-To", "b@example.com").
		wantError(t, 429, 451, "4.7.1", "Rate limit exceeded")
	h.raw(rawMsg, "Mtad-From", "a@example.org", "Mtad-To", "x").wantError(t, 400, 501, "5.1.3", "missing domain")
	h.raw(rawMsg, "Mtad-From", "a@example.org").wantError(t, 400, 554, "5.5.1", "no recipients")
	h.raw(strings.Repeat("x", 70<<10), "Mtad-From", "", "Mtad-To", "b@example.com").wantError(t, 413, 552, "5.3.4", "")
	if fmt.Sprintf("%q", senders) != `["spammer@example.org" ""]` {
		t.Errorf("TakeMessage asked about %q", senders)
	}
}

// The JSON form with a raw message: per-recipient parameters, metadata.
func TestJSONRaw(t *testing.T) {
	h := start(t, testConfig())
	a := h.json(obj{
		"envelope": obj{
			"from":   "a@example.org",
			"notify": "NEVER",
			"to": []any{"b@example.com",
				obj{"addr": "c@example.com", "notify": "FAILURE,DELAY", "orcpt": "rfc822;c@example.com"},
				"B@example.COM"},
			"ret": "FULL", "envid": "e-1", "priority": 7,
			"metadata": obj{"tenant": "acme", "campaign": "bf"},
		},
		"raw": "Subject: x\nFrom: a@example.org\n\nbody\n",
	})
	if a.status != http.StatusAccepted || a.ok.Accepted != 3 {
		t.Fatalf("%d %+v %+v", a.status, a.ok, a.err)
	}
	m := h.acc.only(t)
	env := m.env
	want := []messages.Recipient{
		{Index: 0, Addr: "b@example.com", Notify: messages.NotifyNever},
		{Index: 1, Addr: "c@example.com", Notify: messages.NotifyFailure | messages.NotifyDelay, ORcpt: "rfc822;c@example.com"},
		{Index: 2, Addr: "B@example.COM", Notify: messages.NotifyNever}, // the local part has case
	}
	if fmt.Sprint(env.Rcpts) != fmt.Sprint(want) {
		t.Errorf("rcpts %+v", env.Rcpts)
	}
	if env.Ret != messages.RetFull || env.EnvID != "e-1" || env.Priority != 7 || env.Metadata["tenant"] != "acme" ||
		env.Metadata["campaign"] != "bf" || len(env.Metadata) != 2 || env.Source != "http" {
		t.Errorf("envelope %+v", env)
	}
	if !strings.HasSuffix(string(m.body), "\r\nSubject: x\r\nFrom: a@example.org\r\n\r\nbody\r\n") {
		t.Errorf("body %q", m.body)
	}
}

// JSON requests that are refused 400, each naming its field.
func TestJSONRefusals(t *testing.T) {
	tests := []struct {
		name, body string
		code       int
		enhanced   string
		want       string
	}{
		{"bad address", `{"envelope":{"from":"a@x.org","to":["b@y.org","c@z.org","x"]},"raw":"X: y\r\n\r\n"}`, 501, "5.1.3", `envelope.to[2]: "x": missing domain`},
		{"bad object", `{"envelope":{"from":"a@x.org","to":[{"addr":"@y.org"}]},"raw":"x"}`, 501, "5.1.3", `envelope.to[0].addr: "@y.org": missing local part`},
		{"object without addr", `{"envelope":{"from":"a@x.org","to":[{"notify":"NEVER"}]},"raw":"x"}`, 501, "5.5.4", "envelope.to[0].addr: required"},
		{"bad to element", `{"envelope":{"from":"a@x.org","to":[3]},"raw":"x"}`, 501, "5.5.4", "envelope.to[0]: want an address or"},
		{"bad orcpt", `{"envelope":{"from":"a@x.org","to":[{"addr":"b@y.org","orcpt":"c@y.org"}]},"raw":"x"}`, 501, "5.5.4", "envelope.to[0].orcpt"},
		{"bad notify", `{"envelope":{"from":"a@x.org","to":[{"addr":"b@y.org","notify":"ALWAYS"}]},"raw":"x"}`, 501, "5.5.4", "envelope.to[0].notify"},
		{"type", `{"envelope":{"from":"a@x.org","to":["b@y.org"],"priority":"high"},"raw":"x"}`, 501, "5.5.4", "envelope.priority: want int, got string"},
		{"unknown field", `{"envelope":{"from":"a@x.org","to":["b@y.org"]},"raw":"x","attachements":[]}`, 501, "5.5.4", `unknown field "attachements"`},
		{"syntax", `{"envelope":`, 501, "5.5.4", "incomplete JSON"},
		{"trailing", `{"envelope":{"from":"a@x.org","to":["b@y.org"]},"raw":"x"} {}`, 501, "5.5.4", "data after the JSON object"},
		{"both", `{"envelope":{"from":"a@x.org","to":["b@y.org"]},"raw":"x","message":{"from":"a@x.org"}}`, 501, "5.5.4", "give one of them"},
		{"neither", `{"envelope":{"from":"a@x.org","to":["b@y.org"]}}`, 501, "5.5.4", "raw or message is required"},
		{"raw without envelope", `{"raw":"x"}`, 501, "5.5.4", "envelope is required with raw"},
		{"raw without from", `{"envelope":{"to":["b@y.org"]},"raw":"x"}`, 501, "5.5.4", "envelope.from is required"},
		{"empty raw", `{"envelope":{"from":"a@x.org","to":["b@y.org"]},"raw":""}`, 554, "5.6.0", "empty message"},
		{"empty to", `{"envelope":{"to":[]},"message":{"from":"a@x.org","to":["b@y.org"]}}`, 554, "5.5.1", "no recipients"},
		{"requiretls", `{"envelope":{"from":"a@x.org","to":["b@y.org"],"requiretls":true},"raw":"x"}`, 555, "5.5.4", "REQUIRETLS"},
		{"metadata key", `{"envelope":{"from":"a@x.org","to":["b@y.org"],"metadata":{"Tenant":"x"}},"raw":"x"}`, 501, "5.5.4", `metadata "Tenant": a key is 1 to 64`},
		{"metadata control", `{"envelope":{"from":"a@x.org","to":["b@y.org"],"metadata":{"t":"a\nb"}},"raw":"x"}`, 501, "5.5.4", "control characters"},
		{"no message from", `{"message":{"to":["b@y.org"],"text":"x"}}`, 501, "5.5.4", "message.from: required"},
		{"bad message to", `{"message":{"from":"a@x.org","to":["b@y.org","Bob <bob>"],"text":"x"}}`, 501, "5.1.3", `message.to[1]: "Bob <bob>"`},
		{"subject injection", `{"message":{"from":"a@x.org","to":["b@y.org"],"subject":"hi\r\nBcc: victim@z.org"}}`, 501, "5.5.4", "message.subject: line breaks"},
		{"name injection", `{"message":{"from":"A\nBcc: v@z.org <a@x.org>","to":["b@y.org"]}}`, 501, "5.5.4", "message.from: line breaks"},
		{"header value injection", `{"message":{"from":"a@x.org","to":["b@y.org"],"headers":{"X-A":"1\r\nBcc: v@z.org"}}}`, 501, "5.5.4", `message.headers["X-A"]: line breaks`},
		{"header name injection", `{"message":{"from":"a@x.org","to":["b@y.org"],"headers":{"X-A: 1\r\nBcc":"v@z.org"}}}`, 501, "5.5.4", "a header name is"},
		{"header control", `{"message":{"from":"a@x.org","to":["b@y.org"],"headers":{"X-A":"1\u0000"}}}`, 501, "5.5.4", "control characters"},
		{"reserved From", `{"message":{"from":"a@x.org","to":["b@y.org"],"headers":{"from":"c@x.org"}}}`, 501, "5.5.4", "header from may not be set here, use message.from"},
		{"reserved Content", `{"message":{"from":"a@x.org","to":["b@y.org"],"headers":{"Content-Type":"text/html"}}}`, 501, "5.5.4", "header Content-Type is written by mtad"},
		{"reserved Message-ID", `{"message":{"from":"a@x.org","to":["b@y.org"],"headers":{"Message-Id":"<x@y>"}}}`, 501, "5.5.4", "header Message-Id is written by mtad"},
		{"header twice", `{"message":{"from":"a@x.org","to":["b@y.org"],"headers":{"X-A":"1","x-a":"2"}}}`, 501, "5.5.4", "given twice"},
		{"base64", `{"message":{"from":"a@x.org","to":["b@y.org"],"attachments":[{"filename":"a","content":"aGVsbG8="},{"filename":"b","content":"@@@@"}]}}`, 501, "5.5.4", "message.attachments[1].content: not base64"},
		{"content type", `{"message":{"from":"a@x.org","to":["b@y.org"],"attachments":[{"content":"","content_type":"pdf"}]}}`, 501, "5.5.4", `message.attachments[0].content_type: "pdf" is not a media type`},
		{"multipart attachment", `{"message":{"from":"a@x.org","to":["b@y.org"],"attachments":[{"content":"","content_type":"multipart/mixed; boundary=x"}]}}`, 501, "5.5.4", "multipart/mixed cannot be an attachment"},
		{"content id", `{"message":{"from":"a@x.org","to":["b@y.org"],"attachments":[{"content":"","inline":true,"content_id":"a b"}]}}`, 501, "5.5.4", "message.attachments[0].content_id"},
		{"filename injection", `{"message":{"from":"a@x.org","to":["b@y.org"],"attachments":[{"content":"","filename":"a\r\nX: y"}]}}`, 501, "5.5.4", "message.attachments[0].filename: line breaks"},
	}
	h := start(t, testConfig())
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h.jsonText(tt.body).wantError(t, http.StatusBadRequest, tt.code, tt.enhanced, tt.want)
		})
	}
	if n := len(h.acc.accepted()); n != 0 {
		t.Errorf("%d messages accepted", n)
	}
	// Envelope headers belong to the raw form.
	h.post("application/json", strings.NewReader(`{"raw":"x"}`), "Mtad-From", "a@x.org").
		wantError(t, 400, 501, "5.5.4", "envelope headers go with message/rfc822")
}

// readMessage reads the body into the buffer that starts with the
// Received header, sized from Content-Length: no copy.
func TestReadMessageOneBuffer(t *testing.T) {
	body := "Subject: x\r\n\r\nhello\r\n"
	buf, err := readMessage("Received: x\r\n", strings.NewReader(body), int64(len(body)), 1000)
	if err != nil || string(buf) != "Received: x\r\n"+body {
		t.Fatalf("readMessage = %q, %v", buf, err)
	}
	if cap(buf) != len(buf)+2 {
		t.Errorf("cap %d for %d bytes: the buffer grew", cap(buf), len(buf))
	}
}
