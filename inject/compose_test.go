package inject

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/http"
	"net/mail"
	"net/textproto"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/mtad/mtad/messages"
	"github.com/mtad/mtad/submission"
)

// leaf is a decoded single part of a composed message.
type leaf struct {
	contentType, disposition, contentID string
	content                             string
}

// parseMIME walks a composed message: it returns its structure, as
// "multipart/mixed[text/plain,application/pdf]", and its leaves decoded.
func parseMIME(t *testing.T, header textproto.MIMEHeader, body io.Reader) (string, []leaf) {
	t.Helper()
	return walkMIME(t, header, body, true)
}

func walkMIME(t *testing.T, header textproto.MIMEHeader, body io.Reader, root bool) (string, []leaf) {
	t.Helper()
	mt, params, err := mime.ParseMediaType(header.Get("Content-Type"))
	if err != nil {
		t.Fatalf("Content-Type %q: %v", header.Get("Content-Type"), err)
	}
	if !strings.HasPrefix(mt, "multipart/") {
		l := decodeLeaf(t, mt, header, body)
		if root {
			// The CRLF that ends a single-part message is the body's.
			l.content = strings.TrimSuffix(l.content, "\r\n")
		}
		return mt, []leaf{l}
	}
	if !strings.Contains(params["boundary"], "=_") {
		t.Errorf("boundary %q", params["boundary"])
	}
	mr := multipart.NewReader(body, params["boundary"])
	var kids []string
	var leaves []leaf
	for {
		p, err := mr.NextRawPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		s, l := walkMIME(t, p.Header, p, false)
		kids = append(kids, s)
		leaves = append(leaves, l...)
	}
	return mt + "[" + strings.Join(kids, ",") + "]", leaves
}

func decodeLeaf(t *testing.T, mt string, header textproto.MIMEHeader, body io.Reader) leaf {
	t.Helper()
	var r io.Reader
	switch cte := header.Get("Content-Transfer-Encoding"); cte {
	case "quoted-printable":
		r = quotedprintable.NewReader(body)
	case "base64":
		r = base64.NewDecoder(base64.StdEncoding, body)
	default:
		t.Fatalf("%s: Content-Transfer-Encoding %q", mt, cte)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("%s: %v", mt, err)
	}
	return leaf{contentType: header.Get("Content-Type"), disposition: header.Get("Content-Disposition"),
		contentID: header.Get("Content-ID"), content: string(b)}
}

// checkLines checks that every line of b ends with CRLF, that no line is
// longer than 78 characters and that the body is 7-bit.
func checkLines(t *testing.T, b []byte) {
	t.Helper()
	if !bytes.HasSuffix(b, []byte("\r\n")) {
		t.Errorf("message does not end with CRLF")
	}
	for i, line := range bytes.Split(bytes.TrimSuffix(b, []byte("\r\n")), []byte("\r\n")) {
		if bytes.ContainsAny(line, "\r\n") {
			t.Errorf("line %d has a bare CR or LF: %q", i, line)
		}
		if len(line) > 78 {
			t.Errorf("line %d is %d long: %q", i, len(line), line)
		}
		if has8bit(line) {
			t.Errorf("line %d is not 7-bit: %q", i, line)
		}
	}
}

// composeOK posts a message form and returns what was journaled, parsed.
func composeOK(t *testing.T, req any) (messages.Envelope, *mail.Message, []byte) {
	t.Helper()
	h := start(t, testConfig())
	a := h.json(req)
	if a.status != http.StatusAccepted {
		t.Fatalf("%d %+v", a.status, a.err)
	}
	m := h.acc.only(t)
	msg, err := mail.ReadMessage(bytes.NewReader(m.body))
	if err != nil {
		t.Fatal(err)
	}
	return m.env, msg, m.body
}

func TestComposeStructure(t *testing.T) {
	pdf := "%PDF-1.4\x00\xff binary" + strings.Repeat("\x01\x02\x03", 40)
	png := "\x89PNG\r\n\x1a\n image"
	att := func(name, ct, content string, inline bool, cid string) obj {
		return obj{"filename": name, "content_type": ct, "content": base64.StdEncoding.EncodeToString([]byte(content)),
			"inline": inline, "content_id": cid}
	}
	tests := []struct {
		name      string
		msg       obj
		structure string
		leaves    []leaf
	}{
		{"text", obj{"text": "plain"}, "text/plain",
			[]leaf{{"text/plain; charset=utf-8", "", "", "plain"}}},
		{"nothing", obj{}, "text/plain",
			[]leaf{{"text/plain; charset=utf-8", "", "", ""}}},
		{"html", obj{"html": "<p>html</p>"}, "text/html",
			[]leaf{{"text/html; charset=utf-8", "", "", "<p>html</p>"}}},
		{"alternative", obj{"text": "plain", "html": "<p>html</p>"}, "multipart/alternative[text/plain,text/html]",
			[]leaf{{"text/plain; charset=utf-8", "", "", "plain"}, {"text/html; charset=utf-8", "", "", "<p>html</p>"}}},
		{"attachment only", obj{"attachments": []obj{att("a.pdf", "application/pdf", pdf, false, "")}},
			"multipart/mixed[application/pdf]",
			[]leaf{{`application/pdf; name=a.pdf`, `attachment; filename=a.pdf`, "", pdf}}},
		{"everything", obj{"text": "plain", "html": `<p><img src="cid:logo@x"></p>`, "attachments": []obj{
			att("a.pdf", "application/pdf", pdf, false, ""),
			att("logo.png", "image/png", png, true, "<logo@x>"),
			att("résumé.txt", "text/plain; charset=utf-8", "ünï", false, ""),
			att("", "", "", true, ""),
		}},
			"multipart/mixed[multipart/alternative[text/plain,multipart/related[text/html,image/png]],application/pdf,text/plain,application/octet-stream]",
			[]leaf{
				{"text/plain; charset=utf-8", "", "", "plain"},
				{"text/html; charset=utf-8", "", "", `<p><img src="cid:logo@x"></p>`},
				{"image/png; name=logo.png", "inline; filename=logo.png", "<logo@x>", png},
				{"application/pdf; name=a.pdf", "attachment; filename=a.pdf", "", pdf},
				{"text/plain; charset=utf-8; name*=utf-8''r%C3%A9sum%C3%A9.txt", "attachment; filename*=utf-8''r%C3%A9sum%C3%A9.txt", "", "ünï"},
				{"application/octet-stream", "inline", "", ""},
			}},
		{"inline without html", obj{"text": "plain", "attachments": []obj{att("l.png", "image/png", png, true, "l")}},
			"multipart/mixed[text/plain,image/png]",
			[]leaf{{"text/plain; charset=utf-8", "", "", "plain"}, {"image/png; name=l.png", "inline; filename=l.png", "<l>", png}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.msg["from"] = "a@example.org"
			tt.msg["to"] = []string{"b@example.com"}
			env, msg, body := composeOK(t, obj{"message": tt.msg})
			checkLines(t, body)
			if env.Body != messages.Body7Bit || env.SMTPUTF8 {
				t.Errorf("Body %s SMTPUTF8 %v", env.Body, env.SMTPUTF8)
			}
			if msg.Header.Get("MIME-Version") != "1.0" {
				t.Errorf("MIME-Version %q", msg.Header.Get("MIME-Version"))
			}
			s, leaves := parseMIME(t, textproto.MIMEHeader(msg.Header), msg.Body)
			if s != tt.structure {
				t.Errorf("structure %s\nwant      %s", s, tt.structure)
			}
			if fmt.Sprintf("%q", leaves) != fmt.Sprintf("%q", tt.leaves) {
				t.Errorf("leaves %q\nwant   %q", leaves, tt.leaves)
			}
		})
	}
}

// The header fields: addresses with encoded display names, an encoded
// subject, Date, Message-ID, the user's fields; Bcc only in the envelope.
func TestComposeHeader(t *testing.T) {
	before := time.Now().Add(-time.Second)
	env, msg, body := composeOK(t, obj{"message": obj{
		"from":     "Zoë Ødegård <zoe@example.org>",
		"to":       []string{"b@example.com", `"Smith, John" <john@example.net>`},
		"cc":       []string{"c@example.com"},
		"bcc":      []string{"hidden@example.com", "B@EXAMPLE.COM"},
		"reply_to": "Replies <r@example.org>",
		"subject":  "Hi ✓ " + strings.Repeat("a long subject ", 8),
		"text":     "line one\nline two with trailing space \ncafé " + strings.Repeat("0123456789", 12),
		"headers":  obj{"X-Campaign": "bf", "List-Unsubscribe": "<mailto:u@example.org>", "X-Note": "naïve"},
	}, "envelope": obj{"metadata": obj{"campaign": "bf"}}})
	checkLines(t, body)
	if bytes.Contains(body, []byte("hidden")) {
		t.Error("Bcc address in the message")
	}
	var rcpts []string
	for _, rc := range env.Rcpts {
		rcpts = append(rcpts, rc.Addr)
	}
	if got := strings.Join(rcpts, " "); got != "b@example.com john@example.net c@example.com hidden@example.com B@EXAMPLE.COM" {
		t.Errorf("envelope rcpts %s", got)
	}
	if env.From != "zoe@example.org" || env.Metadata["campaign"] != "bf" {
		t.Errorf("envelope %+v", env)
	}
	h := msg.Header
	dec := new(mime.WordDecoder)
	checks := map[string]string{}
	from, _ := h.AddressList("From")
	to, _ := h.AddressList("To")
	replyTo, _ := h.AddressList("Reply-To")
	subject, err := dec.DecodeHeader(h.Get("Subject"))
	note, _ := dec.DecodeHeader(h.Get("X-Note"))
	checks["From"] = fmt.Sprint(from)
	checks["To"] = fmt.Sprint(to)
	checks["Cc"] = h.Get("Cc")
	checks["Reply-To"] = fmt.Sprint(replyTo)
	checks["Subject"] = subject
	checks["X-Campaign"] = h.Get("X-Campaign")
	checks["X-Note"] = note
	checks["List-Unsubscribe"] = h.Get("List-Unsubscribe")
	want := map[string]string{
		"From":             fmt.Sprint([]*mail.Address{{Name: "Zoë Ødegård", Address: "zoe@example.org"}}),
		"To":               fmt.Sprint([]*mail.Address{{Address: "b@example.com"}, {Name: "Smith, John", Address: "john@example.net"}}),
		"Cc":               "<c@example.com>",
		"Reply-To":         fmt.Sprint([]*mail.Address{{Name: "Replies", Address: "r@example.org"}}),
		"Subject":          "Hi ✓ " + strings.Repeat("a long subject ", 8),
		"X-Campaign":       "bf",
		"X-Note":           "naïve",
		"List-Unsubscribe": "<mailto:u@example.org>",
	}
	if err != nil || fmt.Sprint(checks) != fmt.Sprint(want) {
		t.Errorf("header fields %q (%v)\nwant %q", checks, err, want)
	}
	if date, err := h.Date(); err != nil || date.Before(before) || date.After(time.Now()) {
		t.Errorf("Date %q: %v", h.Get("Date"), err)
	}
	if !regexp.MustCompile(`^<[a-z2-7]{26}@mx\.test>$`).MatchString(h.Get("Message-ID")) {
		t.Errorf("Message-ID %q", h.Get("Message-ID"))
	}
	if !bytes.HasPrefix(body, []byte("Received: ")) || h.Get("Received") == "" {
		t.Error("no Received header first")
	}
	_, leaves := parseMIME(t, textproto.MIMEHeader(h), msg.Body)
	wantText := "line one\r\nline two with trailing space \r\ncafé " + strings.Repeat("0123456789", 12)
	if len(leaves) != 1 || leaves[0].content != wantText {
		t.Errorf("text %q", leaves)
	}
}

// UTF-8 addresses make the message SMTPUTF8; they stay UTF-8 in the
// header (RFC 6532), which is then the only 8-bit part.
func TestComposeUTF8Address(t *testing.T) {
	env, msg, _ := composeOK(t, obj{"message": obj{"from": "jöran@exämple.org", "to": []string{"b@example.com"}, "text": "x"}})
	if !env.SMTPUTF8 || env.Body != messages.Body8BitMIME || env.From != "jöran@exämple.org" {
		t.Errorf("envelope %+v", env)
	}
	if msg.Header.Get("From") != "<jöran@exämple.org>" {
		t.Errorf("From %q", msg.Header.Get("From"))
	}
}

// Long address lists fold between addresses.
func TestComposeFolding(t *testing.T) {
	var to []string
	for i := range 40 {
		to = append(to, fmt.Sprintf("Recipient Number %d <r%d@example.com>", i, i))
	}
	cfg := testConfig()
	cfg.MaxRecipients = 100
	h := start(t, cfg)
	a := h.json(obj{"message": obj{"from": "a@example.org", "to": to, "text": "x"}})
	if a.status != http.StatusAccepted {
		t.Fatalf("%d %+v", a.status, a.err)
	}
	body := h.acc.only(t).body
	checkLines(t, body)
	msg, err := mail.ReadMessage(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	got, err := msg.Header.AddressList("To")
	if err != nil || len(got) != 40 || got[39].Name != "Recipient Number 39" || got[39].Address != "r39@example.com" {
		t.Errorf("To: %v %v", got, err)
	}
}

// A word that cannot be folded into 998-character lines is refused.
func TestComposeUnfoldable(t *testing.T) {
	h := start(t, testConfig())
	h.json(obj{"message": obj{"from": "a@example.org", "to": []string{"b@example.com"}, "subject": strings.Repeat("x", 1000)}}).
		wantError(t, 400, 501, "5.5.4", "message.subject: a word too long")
}

// Whatever text and subject go in, the composed message parses and its
// text decodes to what was given, with CRLF line ends.
func FuzzCompose(f *testing.F) {
	f.Add("plain", "<p>html</p>", "Hi ✓")
	f.Add("", "", "")
	f.Add("a\r\nb\rc\nd=\t \n.\r\n", "=?utf-8?q?x?=", "=?utf-8?q?x?=")
	f.Add(strings.Repeat("é", 200), strings.Repeat("x", 300), strings.Repeat("word ", 100))
	f.Fuzz(func(t *testing.T, text, html, subject string) {
		jm := &jsonMessage{From: "a@example.org", To: []string{"b@example.com"}, Text: text, HTML: html, Subject: subject}
		m, err := parseMessage(jm)
		if err != nil {
			return // refused input (control characters, unfoldable subject)
		}
		body := endCRLF(m.compose("Received: x\r\n", "mx.test", time.Now()))
		msg, err := mail.ReadMessage(bytes.NewReader(body))
		if err != nil {
			t.Fatalf("%q: %v", body, err)
		}
		_, leaves := parseMIME(t, textproto.MIMEHeader(msg.Header), msg.Body)
		var got []string
		for _, l := range leaves {
			got = append(got, l.content)
		}
		crlf := func(s string) string { return string(submission.NormalizeEOL([]byte(s))) }
		var want []string
		if text != "" || html == "" {
			want = append(want, crlf(text))
		}
		if html != "" {
			want = append(want, crlf(html))
		}
		if len(want) == 1 {
			want[0] = strings.TrimSuffix(want[0], "\r\n")
		}
		if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", want) {
			t.Errorf("decoded %q, want %q", got, want)
		}
		// Unfolding may change white space; text that looks like an
		// encoded word is read as one.
		if utf8.ValidString(subject) && !strings.Contains(subject, "=?") {
			s, err := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
			if err != nil || strings.Join(strings.Fields(s), " ") != strings.Join(strings.Fields(subject), " ") {
				t.Errorf("subject %q (%v), want %q", s, err, subject)
			}
		}
	})
}
