package mtasts

import (
	"errors"
	"strings"
	"testing"
)

// FuzzParse: Parse never panics, and what it accepts is a usable policy.
// Seeds beyond these are in testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	f.Add([]byte(enforce))
	f.Add([]byte("version: STSv1\nmode: none\nmax_age: 0\n"))
	f.Add([]byte("version: STSv1\nmode: testing\nmx: *.example.com\nmax_age: 31557600"))
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := Parse(body)
		if err != nil {
			if p != nil || !errors.Is(err, ErrInvalidPolicy) {
				t.Fatalf("Parse = %+v, %v", p, err)
			}
			return
		}
		if p.Version != "STSv1" {
			t.Fatalf("version %q", p.Version)
		}
		switch p.Mode {
		case ModeEnforce, ModeTesting:
			if len(p.MX) == 0 {
				t.Fatalf("mode %s without mx", p.Mode)
			}
		case ModeNone:
		default:
			t.Fatalf("mode %q", p.Mode)
		}
		if p.MaxAge < 0 || p.MaxAge.Seconds() > maxMaxAge {
			t.Fatalf("max_age %v", p.MaxAge)
		}
		for _, mx := range p.MX {
			if mx != strings.ToLower(mx) || !validName(strings.TrimPrefix(mx, "*.")) {
				t.Fatalf("mx %q", mx)
			}
			if !strings.HasPrefix(mx, "*.") && !p.Matches(mx) {
				t.Fatalf("mx %q does not match itself", mx)
			}
		}
	})
}

// FuzzParseTXT: ParseTXT never panics and returns only valid ids.
func FuzzParseTXT(f *testing.F) {
	f.Add("v=STSv1; id=20160831085700Z;")
	f.Add("v=STSv1;id=a;ext=b")
	f.Add("v=STSv1 ; id=a ; id=b")
	f.Fuzz(func(t *testing.T, record string) {
		id, err := ParseTXT(record)
		switch {
		case err != nil && (id != "" || !errors.Is(err, ErrInvalidRecord)):
			t.Fatalf("ParseTXT = %q, %v", id, err)
		case err == nil && !validID(id):
			t.Fatalf("ParseTXT = %q", id)
		}
	})
}
