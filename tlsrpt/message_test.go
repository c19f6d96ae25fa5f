package tlsrpt

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"strconv"
	"strings"
	"testing"
	"time"
)

var testNow = time.Date(2026, 7, 11, 0, 30, 0, 0, time.UTC)

// testReport is the day 1 report of example.com, with its submitter.
func testReport(t *testing.T) *Report {
	t.Helper()
	r := NewRecorder()
	record(r)
	rep := r.Take(day1)["example.com"]
	if err := rep.SetSubmitter(testOrg, testContact); err != nil {
		t.Fatal(err)
	}
	return rep
}

func TestMessage(t *testing.T) {
	rep := testReport(t)
	to := []string{"tls-reports@example.com", "Ops <ops@example.com>"}
	raw, err := rep.Message(`"TLS Reports" <`+testContact+">", to, testNow)
	if err != nil {
		t.Fatal(err)
	}
	checkLines(t, raw)
	js, err := rep.JSON()
	if err != nil {
		t.Fatal(err)
	}
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	h := msg.Header
	id := "2026-07-10_example.com@" + testOrg
	for name, want := range map[string]string{
		"From":                 `"TLS Reports" <` + testContact + ">",
		"To":                   "<tls-reports@example.com>, \"Ops\" <ops@example.com>",
		"Subject":              "Report Domain: example.com Submitter: " + testOrg + " Report-ID: <" + id + ">",
		"Tls-Report-Domain":    "example.com",
		"Tls-Report-Submitter": testOrg,
		"Mime-Version":         "1.0",
		"Auto-Submitted":       "auto-generated",
	} {
		if got := unfold(h.Get(name)); got != want {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}
	if d, err := h.Date(); err != nil || !d.Equal(testNow) {
		t.Errorf("Date: %v, %v; want %v", d, err, testNow)
	}
	if mid := h.Get("Message-Id"); !strings.HasPrefix(mid, "<") || !strings.HasSuffix(mid, "@"+testOrg+">") {
		t.Errorf("Message-ID %q", mid)
	}
	mt, params, err := mime.ParseMediaType(unfold(h.Get("Content-Type")))
	if err != nil || mt != "multipart/report" || params["report-type"] != "tlsrpt" {
		t.Fatalf("Content-Type %q: %v", h.Get("Content-Type"), err)
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	text := nextPart(t, mr, "text/plain")
	if body, _ := io.ReadAll(text); !bytes.Contains(body, []byte("example.com")) {
		t.Errorf("text part %q does not name the domain", body)
	}
	att := nextPart(t, mr, "application/tlsrpt+gzip")
	checkFilename(t, att, rep)
	if enc := att.Header.Get("Content-Transfer-Encoding"); enc != "base64" {
		t.Errorf("Content-Transfer-Encoding %q", enc)
	}
	zr, err := gzip.NewReader(base64.NewDecoder(base64.StdEncoding, att))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, js) {
		t.Errorf("attachment holds\n%s\nwant\n%s", got, js)
	}
	if _, err := mr.NextPart(); err != io.EOF {
		t.Errorf("a third part, or a bad end: %v", err)
	}
}

// nextPart returns the next part, which must be of type want.
func nextPart(t *testing.T, mr *multipart.Reader, want string) *multipart.Part {
	t.Helper()
	p, err := mr.NextPart()
	if err != nil {
		t.Fatalf("reading the %s part: %v", want, err)
	}
	if mt, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type")); mt != want {
		t.Fatalf("part of type %q, want %q", mt, want)
	}
	return p
}

// checkFilename checks the attachment's name against RFC 8460 section
// 5.1: sender "!" policy-domain "!" begin "!" end "!" unique-id ".json.gz".
func checkFilename(t *testing.T, p *multipart.Part, rep *Report) {
	t.Helper()
	_, params, err := mime.ParseMediaType(unfold(p.Header.Get("Content-Disposition")))
	if err != nil {
		t.Fatal(err)
	}
	name, ok := strings.CutSuffix(params["filename"], ".json.gz")
	f := strings.Split(name, "!")
	if !ok || len(f) != 5 || f[0] != testOrg || f[1] != "example.com" ||
		f[2] != strconv.FormatInt(day1.Unix(), 10) || f[3] != strconv.FormatInt(rep.DateRange.End.Unix(), 10) {
		t.Fatalf("filename %q", params["filename"])
	}
	for _, c := range f[4] {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z') || f[4] == "" {
			t.Fatalf("unique-id %q is not letters and digits", f[4])
		}
	}
}

// checkLines checks that every line ends in CRLF, is ASCII, and is at
// most 78 characters unless it is one word that cannot be folded (RFC
// 5322 section 2.1.1), and never over 998.
func checkLines(t *testing.T, raw []byte) {
	t.Helper()
	if !bytes.HasSuffix(raw, []byte("\r\n")) {
		t.Error("message does not end in CRLF")
	}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Split(func(data []byte, atEOF bool) (int, []byte, error) {
		if i := bytes.Index(data, []byte("\r\n")); i >= 0 {
			return i + 2, data[:i], nil
		}
		if atEOF && len(data) > 0 {
			return len(data), data, nil
		}
		return 0, nil, nil
	})
	for sc.Scan() {
		line := sc.Text()
		long := len(line) > 78 && strings.Contains(strings.TrimLeft(line, " "), " ")
		if long || len(line) > 998 || strings.ContainsAny(line, "\r\n") || !isASCII(line) {
			t.Errorf("bad line %q", line)
		}
	}
}

func unfold(s string) string { return strings.Join(strings.Fields(s), " ") }

func TestMessageRefuses(t *testing.T) {
	rep := testReport(t)
	tests := []struct {
		name string
		from string
		to   []string
	}{
		{"no recipients", testContact, nil},
		{"bad from", "not an address", []string{"a@example.com"}},
		{"injected to", testContact, []string{"a@example.com\r\nBcc: victim@example.org"}},
		{"non-ASCII to", testContact, []string{"jörg@example.com"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := rep.Message(tc.from, tc.to, testNow); err == nil {
				t.Error("Message succeeded")
			}
		})
	}
	if _, err := (&Report{}).Message(testContact, []string{"a@example.com"}, testNow); err == nil {
		t.Error("Message of an empty report succeeded")
	}
}
