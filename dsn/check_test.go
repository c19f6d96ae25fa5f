package dsn

import (
	"bufio"
	"bytes"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"net/textproto"
	"strings"
	"testing"
)

// topFields are the header fields a DSN has, and whether each is required.
var topFields = map[string]bool{
	"From": true, "To": true, "Date": true, "Message-ID": true, "Subject": true,
	"References": false, "Auto-Submitted": true, "MIME-Version": true, "Content-Type": true,
}

var (
	perMessage   = fieldSet("Original-Envelope-Id", "Reporting-MTA", "Arrival-Date")
	perRecipient = fieldSet("Original-Recipient", "Final-Recipient", "Action", "Status", "Remote-MTA",
		"Diagnostic-Code", "Last-Attempt-Date", "Will-Retry-Until")
	returnedTypes = fieldSet("message/rfc822", "text/rfc822-headers", "message/global", "message/global-headers")
)

func fieldSet(names ...string) map[string]bool {
	m := make(map[string]bool)
	for _, n := range names {
		m[textproto.CanonicalMIMEHeaderKey(n)] = true
	}
	return m
}

// checkDSN parses out as a DSN for r with net/mail, mime/multipart and
// net/textproto, and checks its shape: only our header fields, each once;
// two or three parts of the right types; a per-message block and one block
// per recipient with known fields only; CRLF lines within 998 octets in
// everything Build wrote itself.
func checkDSN(t testing.TB, out []byte, r Report) {
	t.Helper()
	head, _, ok := bytes.Cut(out, []byte("\r\n\r\n"))
	if !ok {
		t.Fatalf("no end of the header section:\n%q", out)
	}
	checkLines(t, "header", head)
	checkTopFields(t, head)
	msg, err := mail.ReadMessage(bytes.NewReader(out))
	if err != nil {
		t.Fatalf("net/mail: %v", err)
	}
	checkTopValues(t, msg.Header, r)
	parts := readParts(t, msg)
	want := 2
	if len(r.returned().data) > 0 {
		want = 3
	}
	if len(parts) != want {
		t.Fatalf("%d parts, want %d", len(parts), want)
	}
	if parts[0].contentType != "text/plain" {
		t.Errorf("part 1 is %s", parts[0].contentType)
	}
	checkLines(t, "part 1", parts[0].body)
	checkLines(t, "part 2", parts[1].body)
	checkStatus(t, parts[1], r)
	if want == 3 && !returnedTypes[textproto.CanonicalMIMEHeaderKey(parts[2].contentType)] {
		t.Errorf("part 3 is %s", parts[2].contentType)
	}
}

// checkLines: CRLF only, no line over 998 octets.
func checkLines(t testing.TB, what string, b []byte) {
	t.Helper()
	for i, line := range strings.Split(string(b), "\r\n") {
		if strings.ContainsAny(line, "\r\n") {
			t.Errorf("%s line %d has a bare CR or LF: %q", what, i+1, line)
		}
		if len(line) > 998 {
			t.Errorf("%s line %d is %d octets", what, i+1, len(line))
		}
	}
}

// checkTopFields: every line of the header section is one of topFields or
// continues one, and each field is there once.
func checkTopFields(t testing.TB, head []byte) {
	t.Helper()
	seen := make(map[string]int)
	for _, line := range strings.Split(string(head), "\r\n") {
		if strings.HasPrefix(line, " ") || strings.HasPrefix(line, "\t") {
			continue
		}
		name, _, ok := strings.Cut(line, ":")
		if _, known := topFields[name]; !ok || !known {
			t.Errorf("unexpected header line %q", line)
			continue
		}
		seen[name]++
	}
	for name, required := range topFields {
		if seen[name] > 1 || required && seen[name] != 1 {
			t.Errorf("field %s appears %d times", name, seen[name])
		}
	}
}

func checkTopValues(t testing.TB, h mail.Header, r Report) {
	t.Helper()
	if got, want := h.Get("To"), "<"+r.Envelope.From+">"; got != want {
		t.Errorf("To: %q, want %q", got, want)
	}
	if a, err := mail.ParseAddress(h.Get("From")); err != nil || a.Address != "MAILER-DAEMON@"+r.ReportingMTA {
		t.Errorf("From: %q (%v)", h.Get("From"), err)
	}
	if _, err := h.Date(); err != nil {
		t.Errorf("Date: %v", err)
	}
	if h.Get("Auto-Submitted") != "auto-replied" || h.Get("MIME-Version") != "1.0" {
		t.Errorf("Auto-Submitted %q, MIME-Version %q", h.Get("Auto-Submitted"), h.Get("MIME-Version"))
	}
	if id := h.Get("Message-Id"); !strings.HasPrefix(id, "<") || !strings.HasSuffix(id, "@"+r.ReportingMTA+">") {
		t.Errorf("Message-ID %q", id)
	}
}

// readParts reads the multipart/report's parts, content as it stands.
func readParts(t testing.TB, msg *mail.Message) []part {
	t.Helper()
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/report" || params["report-type"] != "delivery-status" || params["boundary"] == "" {
		t.Fatalf("Content-Type %q: %v", msg.Header.Get("Content-Type"), err)
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	var parts []part
	for {
		p, err := mr.NextRawPart()
		if err == io.EOF {
			return parts
		}
		if err != nil {
			t.Fatalf("part %d: %v", len(parts)+1, err)
		}
		ct, _, err := mime.ParseMediaType(p.Header.Get("Content-Type"))
		if err != nil {
			t.Fatalf("part %d Content-Type: %v", len(parts)+1, err)
		}
		body, err := io.ReadAll(p)
		if err != nil {
			t.Fatalf("part %d: %v", len(parts)+1, err)
		}
		parts = append(parts, part{contentType: ct, encoding: p.Header.Get("Content-Transfer-Encoding"), body: body})
	}
}

// checkStatus parses part 2 as header blocks: per-message fields, then one
// block per recipient, each with known fields, each once.
func checkStatus(t testing.TB, p part, r Report) {
	t.Helper()
	switch p.contentType {
	case "message/delivery-status":
		if !ascii(p.body) || p.encoding != "7bit" {
			t.Errorf("message/delivery-status is not 7bit")
		}
	case "message/global-delivery-status":
	default:
		t.Fatalf("part 2 is %s", p.contentType)
	}
	blocks, err := statusBlocks(p.body)
	if err != nil {
		t.Fatalf("delivery-status: %v\n%s", err, p.body)
	}
	if len(blocks) != 1+len(r.Recipients) {
		t.Fatalf("%d blocks in the delivery-status, want %d:\n%s", len(blocks), 1+len(r.Recipients), p.body)
	}
	checkBlock(t, blocks[0], perMessage, "Reporting-MTA")
	for i, b := range blocks[1:] {
		checkBlock(t, b, perRecipient, "Final-Recipient", "Action", "Status")
		if got := b.Get("Action"); got != string(r.Recipients[i].Action) {
			t.Errorf("recipient %d Action %q, want %q", i, got, r.Recipients[i].Action)
		}
		if !statusCode(b.Get("Status")) {
			t.Errorf("recipient %d Status %q", i, b.Get("Status"))
		}
	}
}

func checkBlock(t testing.TB, h textproto.MIMEHeader, known map[string]bool, required ...string) {
	t.Helper()
	for k, v := range h {
		if !known[k] || len(v) != 1 {
			t.Errorf("field %s (%d times) in %v", k, len(v), h)
		}
	}
	for _, k := range required {
		if h.Get(k) == "" {
			t.Errorf("no %s in %v", k, h)
		}
	}
}

func statusBlocks(body []byte) ([]textproto.MIMEHeader, error) {
	tr := textproto.NewReader(bufio.NewReader(bytes.NewReader(body)))
	var blocks []textproto.MIMEHeader
	for {
		h, err := tr.ReadMIMEHeader()
		if len(h) > 0 {
			blocks = append(blocks, h)
		}
		if err == io.EOF {
			return blocks, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

func partsOf(t *testing.T, out []byte) []part {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	return readParts(t, msg)
}

func statusBlocksOf(t *testing.T, out []byte) []textproto.MIMEHeader {
	t.Helper()
	blocks, err := statusBlocks(partsOf(t, out)[1].body)
	if err != nil {
		t.Fatal(err)
	}
	return blocks
}

func msgID(t *testing.T, out []byte) string {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	return msg.Header.Get("Message-Id")
}
