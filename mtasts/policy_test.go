package mtasts

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	day := 86400 * time.Second
	tests := []struct {
		name    string
		body    string
		want    *Policy
		wantErr string // a part of the error; "" when valid
	}{
		{"enforce crlf", "version: STSv1\r\nmode: enforce\r\nmx: mx1.example.com\r\nmx: *.example.net\r\nmax_age: 86400\r\n",
			&Policy{Version: "STSv1", Mode: ModeEnforce, MX: []string{"mx1.example.com", "*.example.net"}, MaxAge: day}, ""},
		{"testing lf", "version: STSv1\nmode: testing\nmx: mx.example.com\nmax_age: 604800\n",
			&Policy{Version: "STSv1", Mode: ModeTesting, MX: []string{"mx.example.com"}, MaxAge: 7 * day}, ""},
		{"none without mx", "version: STSv1\nmode: none\nmax_age: 0",
			&Policy{Version: "STSv1", Mode: ModeNone, MaxAge: 0}, ""},
		{"none with mx", "version: STSv1\nmode: none\nmx: mx.example.com\nmax_age: 1\n",
			&Policy{Version: "STSv1", Mode: ModeNone, MX: []string{"mx.example.com"}, MaxAge: time.Second}, ""},
		{"no final newline", "version: STSv1\r\nmode: enforce\r\nmx: mx.example.com\r\nmax_age: 86400",
			&Policy{Version: "STSv1", Mode: ModeEnforce, MX: []string{"mx.example.com"}, MaxAge: day}, ""},
		{"mixed line ends", "version: STSv1\nmode: enforce\r\nmx: mx.example.com\nmax_age: 86400\r\n",
			&Policy{Version: "STSv1", Mode: ModeEnforce, MX: []string{"mx.example.com"}, MaxAge: day}, ""},
		{"any order", "max_age: 86400\nmx: mx.example.com\nmode: enforce\nversion: STSv1\n",
			&Policy{Version: "STSv1", Mode: ModeEnforce, MX: []string{"mx.example.com"}, MaxAge: day}, ""},
		{"whitespace", "  version:STSv1 \t\n\nmode:\t enforce\t\r\n\r\nmx:   mx.example.com  \nmax_age:  86400 \n\n",
			&Policy{Version: "STSv1", Mode: ModeEnforce, MX: []string{"mx.example.com"}, MaxAge: day}, ""},
		{"unknown keys ignored", "version: STSv1\nmode: enforce\nfoo: bar baz\nx-ext: =;\nmx: mx.example.com\nmax_age: 86400\n",
			&Policy{Version: "STSv1", Mode: ModeEnforce, MX: []string{"mx.example.com"}, MaxAge: day}, ""},
		{"mx normalized", "version: STSv1\nmode: enforce\nmx: MX.Example.COM.\nmx: *.EXAMPLE.net\nmax_age: 86400\n",
			&Policy{Version: "STSv1", Mode: ModeEnforce, MX: []string{"mx.example.com", "*.example.net"}, MaxAge: day}, ""},
		{"largest max_age", "version: STSv1\nmode: enforce\nmx: mx.example.com\nmax_age: 31557600\n",
			&Policy{Version: "STSv1", Mode: ModeEnforce, MX: []string{"mx.example.com"}, MaxAge: 31557600 * time.Second}, ""},

		{"empty", "", nil, "no version"},
		{"missing version", "mode: enforce\nmx: mx.example.com\nmax_age: 86400\n", nil, "no version"},
		{"wrong version", "version: STSv2\nmode: enforce\nmx: mx.example.com\nmax_age: 86400\n", nil, `line 1: version "STSv2" is not STSv1`},
		{"version case", "version: stsv1\nmode: enforce\nmx: mx.example.com\nmax_age: 86400\n", nil, "is not STSv1"},
		{"missing mode", "version: STSv1\nmx: mx.example.com\nmax_age: 86400\n", nil, "no mode"},
		{"bad mode", "version: STSv1\nmode: strict\nmx: mx.example.com\nmax_age: 86400\n", nil, `line 2: mode "strict" is not enforce, testing or none`},
		{"mode case", "version: STSv1\nmode: Enforce\nmx: mx.example.com\nmax_age: 86400\n", nil, "is not enforce"},
		{"empty mode", "version: STSv1\nmode:\nmx: mx.example.com\nmax_age: 86400\n", nil, `mode ""`},
		{"missing max_age", "version: STSv1\nmode: enforce\nmx: mx.example.com\n", nil, "no max_age"},
		{"oversize max_age", "version: STSv1\nmode: enforce\nmx: mx.example.com\nmax_age: 31557601\n", nil, "max_age 31557601 is more than 31557600"},
		{"eleven digits", "version: STSv1\nmode: enforce\nmx: mx.example.com\nmax_age: 00000086400\n", nil, "not a number of seconds"},
		{"negative max_age", "version: STSv1\nmode: enforce\nmx: mx.example.com\nmax_age: -1\n", nil, "not a number of seconds"},
		{"max_age with unit", "version: STSv1\nmode: enforce\nmx: mx.example.com\nmax_age: 1d\n", nil, "not a number of seconds"},
		{"mx missing under enforce", "version: STSv1\nmode: enforce\nmax_age: 86400\n", nil, "no mx under mode enforce"},
		{"mx missing under testing", "version: STSv1\nmode: testing\nmax_age: 86400\n", nil, "no mx under mode testing"},
		{"bad mx", "version: STSv1\nmode: enforce\nmx: mx..example.com\nmax_age: 86400\n", nil, `mx "mx..example.com"`},
		{"inner wildcard", "version: STSv1\nmode: enforce\nmx: mx.*.example.com\nmax_age: 86400\n", nil, "is not a host name"},
		{"bare wildcard", "version: STSv1\nmode: enforce\nmx: *\nmax_age: 86400\n", nil, "is not a host name"},
		{"empty mx", "version: STSv1\nmode: enforce\nmx:\nmax_age: 86400\n", nil, "is not a host name"},
		{"duplicate mode", "version: STSv1\nmode: enforce\nmode: testing\nmx: mx.example.com\nmax_age: 86400\n", nil, "line 3: mode given twice"},
		{"no colon", "version: STSv1\nmode enforce\nmx: mx.example.com\nmax_age: 86400\n", nil, `line 2: "mode enforce" has no ':'`},
		{"html", "<html><body>Not found</body></html>\n", nil, "has no ':'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse([]byte(tt.body))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrInvalidPolicy) {
					t.Fatalf("Parse = %+v, %v; want error with %q", p, err, tt.wantErr)
				}
				if p != nil {
					t.Errorf("Parse returned a policy with its error: %+v", p)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !reflect.DeepEqual(p, tt.want) {
				t.Errorf("Parse = %+v, want %+v", p, tt.want)
			}
		})
	}
}

func TestMatches(t *testing.T) {
	p := &Policy{Mode: ModeEnforce, MX: []string{"mx1.example.com", "*.example.net", "*.mail.example.org"}}
	tests := []struct {
		host string
		want bool
	}{
		{"mx1.example.com", true},
		{"MX1.Example.COM", true},
		{"mx1.example.com.", true},
		{"mx2.example.com", false},
		{"example.com", false},
		{"a.mx1.example.com", false},
		{"mx.example.net", true},
		{"MX.EXAMPLE.NET.", true},
		{"example.net", false},        // the wildcard needs a label
		{".example.net", false},       // an empty one will not do
		{"a.b.example.net", false},    // nor two
		{"xexample.net", false},       // nor a suffix that is not a label
		{"mx.mail.example.org", true}, // a wildcard under several labels
		{"mx.x.mail.example.org", false},
		{"", false},
		{".", false},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			if got := p.Matches(tt.host); got != tt.want {
				t.Errorf("Matches(%q) = %v, want %v", tt.host, got, tt.want)
			}
		})
	}
}

func TestMatchesHandMadePolicy(t *testing.T) {
	// A policy not from Parse may have patterns in any case, with dots.
	p := &Policy{MX: []string{"MX.Example.COM.", "*.Example.NET."}}
	for _, host := range []string{"mx.example.com", "a.example.net"} {
		if !p.Matches(host) {
			t.Errorf("Matches(%q) = false, want true", host)
		}
	}
	if (&Policy{Mode: ModeNone}).Matches("mx.example.com") {
		t.Error("a policy without mx matches")
	}
}

func TestExpires(t *testing.T) {
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p := &Policy{MaxAge: time.Hour, Fetched: at}
	if got := p.Expires(); !got.Equal(at.Add(time.Hour)) {
		t.Errorf("Expires = %v", got)
	}
	p.MaxAge = 10 * 365 * 24 * time.Hour // not from Parse
	if got := p.Expires(); !got.Equal(at.Add(31557600 * time.Second)) {
		t.Errorf("Expires of a 10-year max_age = %v, want a year later", got)
	}
}
