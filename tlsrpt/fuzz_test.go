package tlsrpt

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"net/url"
	"strings"
	"testing"
)

// FuzzParseTXT feeds ParseTXT two records from the DNS and checks that it
// never panics, returns either URIs or an error of its own, and returns
// only mailto: and https: URIs that parse, from the one TLSRPT record.
func FuzzParseTXT(f *testing.F) {
	f.Add("v=TLSRPTv1; rua=mailto:tlsrpt@example.com", "")
	f.Add("v=TLSRPTv1;rua=mailto:a@example.com,https://r.example.com/x;ext=1;", "v=spf1 -all")
	f.Add("v=TLSRPTv1 ; rua=mailto:a@example.com%2Cb@example.com?subject=x", "v=DMARC1; p=none")
	f.Add("v=TLSRPTv1", "v=TLSRPTv1; rua=mailto:b@example.com")
	f.Add("v=TLSRPTv2; rua=https://[::1]:8443/", "v=TLSRPTv1;;;rua=;")
	f.Add("v=TLSRPTv1; rua=mailto:%ff%00@x\r\nBcc: y", "v=TLSRPTv1;\trua=https://user@host/")
	f.Fuzz(func(t *testing.T, a, b string) {
		var records []string
		for _, r := range []string{a, b} {
			if r != "" {
				records = append(records, r)
			}
		}
		rua, err := ParseTXT(records)
		if err != nil {
			if rua != nil {
				t.Fatalf("ParseTXT returned %q with error %v", rua, err)
			}
			if !errors.Is(err, ErrNoRecord) && !errors.Is(err, ErrMultipleRecords) && !errors.Is(err, ErrSyntax) {
				t.Fatalf("error %v is none of ours", err)
			}
			return
		}
		if len(rua) == 0 {
			t.Fatal("no URIs and no error")
		}
		for _, u := range rua {
			p, err := url.Parse(u)
			if err != nil {
				t.Fatalf("returned %q, which does not parse: %v", u, err)
			}
			switch strings.ToLower(p.Scheme) {
			case "mailto":
				if _, err := mailtoAddrs(p); err != nil {
					t.Fatalf("returned %q: %v", u, err)
				}
			case "https":
			default:
				t.Fatalf("returned %q", u)
			}
		}
	})
}

// FuzzMessage records a result made of what the recipient's DNS and MX
// hosts control, and checks that the report message, when Message makes
// one, has only our header fields and carries the report's JSON.
func FuzzMessage(f *testing.F) {
	f.Add("example.com", "mx1.example.com", "mx: *.example.com", "bad cert", "192.0.2.1", "tls@example.com")
	f.Add("bücher.example", "MX.Bücher.example.", "3 1 1 00", "x\r\nBcc: y@z", "::ffff:1.2.3.4", "a@b\r\nX: y")
	f.Add("a.example\r\nX-Injected: 1", "", "\x00\xff", "--=_tlsrpt_", "", "\"q\" <a@b>")
	f.Fuzz(func(t *testing.T, domain, mx, policy, reason, ip, to string) {
		r := NewRecorder()
		r.Record(Result{Domain: domain, PolicyType: PolicySTS, PolicyStrings: []string{policy}, MXHost: mx,
			SendingIP: ip, ReceivingIP: ip, ResultType: ResultCertificateExpired, FailureReason: reason}, day1)
		for _, rep := range r.Take(day1) {
			if err := rep.SetSubmitter(testOrg, testContact); err != nil {
				t.Fatal(err)
			}
			raw, err := rep.Message(testContact, []string{to}, testNow)
			if err != nil {
				continue
			}
			checkFuzzMessage(t, rep, raw)
		}
	})
}

var messageFields = map[string]bool{"From": true, "To": true, "Subject": true, "Tls-Report-Domain": true,
	"Tls-Report-Submitter": true, "Date": true, "Message-Id": true, "Auto-Submitted": true,
	"Mime-Version": true, "Content-Type": true}

func checkFuzzMessage(t *testing.T, rep *Report, raw []byte) {
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("message does not parse: %v\n%s", err, raw)
	}
	for k, v := range msg.Header {
		if !messageFields[k] || len(v) != 1 {
			t.Fatalf("header field %q %q", k, v)
		}
	}
	_, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		t.Fatal(err)
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	if _, err := mr.NextPart(); err != nil {
		t.Fatal(err)
	}
	p, err := mr.NextPart()
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(base64.NewDecoder(base64.StdEncoding, p))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(zr)
	want, _ := rep.JSON()
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("attachment %q (%v), want %q", got, err, want)
	}
	if _, err := mr.NextPart(); err != io.EOF {
		t.Fatalf("after two parts: %v", err)
	}
}
