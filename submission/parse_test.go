package submission

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCheckAddress(t *testing.T) {
	tests := []struct {
		in   string
		utf8 bool
		want string
		err  error
	}{
		{"a@example.org", false, "a@example.org", nil},
		{"first.last+tag@sub.example.org", false, "first.last+tag@sub.example.org", nil},
		{"a@localhost", false, "a@localhost", nil},
		{"a@x-y.example", false, "a@x-y.example", nil},
		{"a@[192.0.2.1]", false, "a@[192.0.2.1]", nil},
		{"a@[ipv6:2001:db8::1]", false, "a@[ipv6:2001:db8::1]", nil},
		{"john smith@example.org", false, `"john smith"@example.org`, nil},
		{`a"b\c@example.org`, false, `"a\"b\\c"@example.org`, nil},
		{".a@example.org", false, `".a"@example.org`, nil},
		{"ü@exämple.org", true, "ü@exämple.org", nil},
		{"ü@example.org", false, "", errAddrUTF8},
		{"a@exämple.org", false, "", errAddrUTF8},
		{"a", false, "", errAddrSyntax},
		{"@example.org", false, "", errAddrSyntax},
		{"a@", false, "", errAddrSyntax},
		{"a@b@example.org", false, "", errAddrSyntax},
		{"a@example..org", false, "", errAddrSyntax},
		{"a@.example.org", false, "", errAddrSyntax},
		{"a@example.org.", false, "", errAddrSyntax},
		{"a@-x.example", false, "", errAddrSyntax},
		{"a@x-.example", false, "", errAddrSyntax},
		{"a@x_y.example", false, "", errAddrSyntax},
		{"a@192.0.2.1", false, "", errAddrSyntax},
		{"a@[192.0.2.256]", false, "", errAddrSyntax},
		{"a@[2001:db8::1]", false, "", errAddrSyntax},
		{"a@[IPv6:192.0.2.1]", false, "", errAddrSyntax},
		{"a@[IPv6:fe80::1%eth0]", false, "", errAddrSyntax},
		{"a@[192.0.2.1", false, "", errAddrSyntax},
		{"a@" + strings.Repeat("x", 64) + ".example", false, "", errAddrSyntax},
		{strings.Repeat("a", 65) + "@example.org", false, "", errAddrSyntax},
		{"a\x00b@example.org", false, "", errAddrSyntax},
		{"a\x7fb@example.org", false, "", errAddrSyntax},
		{"\xff@example.org", true, "", errAddrSyntax},
		{"a@ex\u200bample.org", true, "", errAddrSyntax},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := checkAddress(tt.in, tt.utf8)
			if got != tt.want || !errors.Is(err, tt.err) || (err == nil) != (tt.err == nil) {
				t.Errorf("checkAddress(%q, %v) = %q, %v; want %q, %v", tt.in, tt.utf8, got, err, tt.want, tt.err)
			}
		})
	}
}

// FuzzCheckAddress: an accepted address keeps its domain, and its local
// part unquotes to the one given.
func FuzzCheckAddress(f *testing.F) {
	for _, s := range []string{"a@example.org", "john smith@example.org", `a"b\c@x`, "ü@exämple.org",
		"a@[IPv6:::1]", "a@[1.2.3.4]", "a@b@c", "@", "a@-", "\x00@x"} {
		f.Add(s, true)
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, in string, utf8OK bool) {
		out, err := checkAddress(in, utf8OK)
		if err != nil {
			return
		}
		local, domain, _ := strings.Cut(in, "@")
		if !strings.HasSuffix(out, "@"+domain) {
			t.Fatalf("%q -> %q: domain changed", in, out)
		}
		ql := strings.TrimSuffix(out, "@"+domain)
		if ql != local && unquote(ql) != local {
			t.Fatalf("%q -> %q: local part changed", in, out)
		}
		if !utf8.ValidString(out) || strings.ContainsAny(out, "\x00\r\n\t <>") && ql == local {
			t.Fatalf("%q -> %q: unsafe characters", in, out)
		}
		if !utf8OK && !isASCII(out) {
			t.Fatalf("%q -> %q: non-ASCII without SMTPUTF8", in, out)
		}
	})
}

// unquote undoes quoteLocal, or returns "" if q is not quoted.
func unquote(q string) string {
	if len(q) < 2 || q[0] != '"' || q[len(q)-1] != '"' {
		return ""
	}
	var b strings.Builder
	for i := 1; i < len(q)-1; i++ {
		if q[i] == '\\' {
			i++
		}
		b.WriteByte(q[i])
	}
	return b.String()
}

func TestNormalizeEOL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"a\r\nb\r\n", "a\r\nb\r\n"},
		{"a\nb\n", "a\r\nb\r\n"},
		{"a\rb\r", "a\r\nb\r\n"},
		{"\n.\n", "\r\n.\r\n"},
		{"\r\n.\n", "\r\n.\r\n"},
		{"\n.\r\n", "\r\n.\r\n"},
		{"\r.\r\n", "\r\n.\r\n"},
		{"\n\r", "\r\n\r\n"},
		{"\r\r\n\n", "\r\n\r\n\r\n"},
	}
	for _, tt := range tests {
		if got := string(normalizeEOL([]byte(tt.in))); got != tt.want {
			t.Errorf("normalizeEOL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// FuzzNormalizeEOL: the output has CRLF line ends only, is a fixed point,
// keeps every other byte in order, and has one line end per line end of the
// input (CRLF, bare CR or bare LF).
func FuzzNormalizeEOL(f *testing.F) {
	for _, s := range []string{"", "a\r\nb", "\n.\n", "\r\n.\n", "\n.\r\n", "\r.\r\n", "\r\r\n\n", "\r"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		out := normalizeEOL(in)
		if bareEOLs(out) != 0 {
			t.Fatalf("%q -> %q: bare CR or LF left", in, out)
		}
		if again := normalizeEOL(out); !bytes.Equal(again, out) {
			t.Fatalf("%q -> %q -> %q: not a fixed point", in, out, again)
		}
		strip := func(b []byte) []byte {
			return bytes.ReplaceAll(bytes.ReplaceAll(b, []byte("\r"), nil), []byte("\n"), nil)
		}
		if !bytes.Equal(strip(in), strip(out)) {
			t.Fatalf("%q -> %q: other bytes changed", in, out)
		}
		ends := bytes.Count(in, []byte("\r\n")) + bareEOLs(in)
		if got := bytes.Count(out, []byte("\r\n")); got != ends {
			t.Fatalf("%q -> %q: %d line ends, want %d", in, out, got, ends)
		}
	})
}
