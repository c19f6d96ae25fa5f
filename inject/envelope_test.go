package inject

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mtad/mtad/messages"
	"github.com/mtad/mtad/submission"
)

func TestParsePath(t *testing.T) {
	tests := []struct{ in, want, err string }{
		{"a@example.com", "a@example.com", ""},
		{" <a@example.com> ", "a@example.com", ""},
		{`"a b"@example.com`, `"a b"@example.com`, ""},
		{`"a\"b"@example.com`, `"a\"b"@example.com`, ""},
		{`"ab"@example.com`, "ab@example.com", ""}, // canonical: a dot-string needs no quotes
		{"jöran@exämple.org", "jöran@exämple.org", ""},
		{"a@[192.0.2.1]", "a@[192.0.2.1]", ""},
		{"x", "", "missing domain"},
		{"a@", "", "missing domain"},
		{"@example.com", "", "missing local part"},
		{`""@example.com`, "", "missing local part"},
		{`"a@example.com`, "", "unterminated quoted string"},
		{`"a"example.com`, "", "missing domain"},
		{"<a@example.com", "", "unbalanced <"},
		{"", "", "empty address"},
		{"<>", "", "empty address"},
		{"a@b@example.com", "", "bad address syntax"},
		{`"a@b"@example.com`, "", "bad address syntax"}, // as go-smtp's unquoting sees it
		{"a..b@example.com", `"a..b"@example.com`, ""},
		{"a@192.0.2.1", "", "bad address syntax"},
		{"a b@example.com", `"a b"@example.com`, ""},
	}
	for _, tt := range tests {
		got, err := parsePath(tt.in)
		if got != tt.want || (err == nil) != (tt.err == "") || err != nil && err.Error() != tt.err {
			t.Errorf("parsePath(%q) = %q, %v; want %q, %q", tt.in, got, err, tt.want, tt.err)
		}
	}
}

func TestSplitList(t *testing.T) {
	got := splitList(` a@x.org,"b, c"@y.org ,, "d\",e"@z.org,`)
	want := []string{"a@x.org", `"b, c"@y.org`, `"d\",e"@z.org`}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("splitList = %q, want %q", got, want)
	}
}

func TestParseNotify(t *testing.T) {
	tests := []struct {
		in   string
		want messages.Notify
		ok   bool
	}{
		{"", 0, true},
		{"NEVER", messages.NotifyNever, true},
		{"success, Failure,DELAY", messages.NotifySuccess | messages.NotifyFailure | messages.NotifyDelay, true},
		{"never,failure", 0, false},
		{"FAILURE,", 0, false},
		{"SOMETIMES", 0, false},
	}
	for _, tt := range tests {
		got, err := parseNotify("n", tt.in)
		if got != tt.want || (err == nil) != tt.ok {
			t.Errorf("parseNotify(%q) = %v, %v", tt.in, got, err)
		}
	}
}

func TestParseORcpt(t *testing.T) {
	for in, ok := range map[string]bool{
		"":                     true,
		"rfc822;a@example.com": true,
		"utf-8;jöran@exämple":  true,
		"a@example.com":        false,
		"rfc822;":              false,
		"rfc 822;a@x":          false,
		"rfc822;a b@x":         false,
		"rfc822;a\x00@x":       false,
	} {
		if _, err := parseORcpt("o", in); (err == nil) != ok {
			t.Errorf("parseORcpt(%q) = %v, want ok %v", in, err, ok)
		}
	}
}

// A client that went away before Accept has nothing journaled.
func TestClientGone(t *testing.T) {
	acc := &fakeAcceptor{}
	h := New(testConfig(), acc, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req := httptest.NewRequest(http.MethodPost, "/api/v1/inject", strings.NewReader(rawMsg)).WithContext(ctx)
	req.Header.Set("Content-Type", "message/rfc822")
	req.Header.Set("Mtad-From", "a@example.org")
	req.Header.Set("Mtad-To", "b@example.com")
	h.ServeHTTP(httptest.NewRecorder(), req)
	if n := len(acc.accepted()); n != 0 {
		t.Errorf("%d messages accepted", n)
	}
}

// Whatever parsePath accepts is canonical: SMTP takes it as it is, and
// parsing it again changes nothing.
func FuzzParsePath(f *testing.F) {
	for _, s := range []string{"a@example.com", `<"a b"@x.org>`, `"a\"b"@x`, "jöran@exämple.org", "a@[IPv6:2001:db8::1]", `"a@b"@c`, ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := parsePath(s)
		if err != nil {
			return
		}
		if c, err := submission.CheckAddress(unquoteLocal(t, a), true); err != nil || c != a {
			t.Errorf("parsePath(%q) = %q; CheckAddress says %q, %v", s, a, c, err)
		}
		if again, err := parsePath(a); err != nil || again != a {
			t.Errorf("parsePath(%q) = %q, parsed again %q, %v", s, a, again, err)
		}
		for _, part := range splitList(a + "," + a) {
			if part != a {
				t.Errorf("splitList splits %q", a)
			}
		}
	})
}

// unquoteLocal undoes the quoting of a canonical address, as go-smtp
// hands addresses to CheckAddress.
func unquoteLocal(t *testing.T, a string) string {
	if !strings.HasPrefix(a, `"`) {
		return a
	}
	local, rest, err := unquote(a)
	if err != nil {
		t.Fatalf("unquote(%q): %v", a, err)
	}
	return local + rest
}
