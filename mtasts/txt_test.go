package mtasts

import (
	"errors"
	"strings"
	"testing"
)

func TestParseTXT(t *testing.T) {
	tests := []struct {
		name    string
		record  string
		want    string
		wantErr string
	}{
		{"rfc example", "v=STSv1; id=20160831085700Z;", "20160831085700Z", ""},
		{"no trailing semicolon", "v=STSv1; id=abc123", "abc123", ""},
		{"no blanks", "v=STSv1;id=abc", "abc", ""},
		{"blanks", "v=STSv1 ;\tid=abc ; ", "abc", ""},
		{"extension before id", "v=STSv1; ext-1=foo; id=abc;", "abc", ""},
		{"extension after id", "v=STSv1; id=abc; x.y_z=1:2/3", "abc", ""},
		{"32 characters", "v=STSv1; id=" + strings.Repeat("a", 32), strings.Repeat("a", 32), ""},

		{"no version", "id=abc;", "", "does not start with v=STSv1"},
		{"version not first", "id=abc; v=STSv1;", "", "does not start with v=STSv1"},
		{"wrong version", "v=STSv2; id=abc;", "", "does not start with v=STSv1"},
		{"leading blank", " v=STSv1; id=abc;", "", "does not start with v=STSv1"},
		{"no id", "v=STSv1;", "", "no id"},
		{"only version", "v=STSv1", "", "no id"},
		{"empty id", "v=STSv1; id=;", "", "is not name=value"},
		{"id too long", "v=STSv1; id=" + strings.Repeat("a", 33), "", "is not 1 to 32 letters and digits"},
		{"id with dash", "v=STSv1; id=2016-08-31;", "", "is not 1 to 32 letters and digits"},
		{"id twice", "v=STSv1; id=a; id=b;", "", "id given twice"},
		{"field without value", "v=STSv1; id=abc; junk;", "", `field "junk" is not name=value`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := ParseTXT(tt.record)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrInvalidRecord) {
					t.Fatalf("ParseTXT = %q, %v; want error with %q", id, err, tt.wantErr)
				}
				return
			}
			if err != nil || id != tt.want {
				t.Fatalf("ParseTXT = %q, %v; want %q", id, err, tt.want)
			}
		})
	}
}

func TestSTSRecord(t *testing.T) {
	tests := []struct {
		name    string
		records []string
		want    string
		ok      bool
	}{
		{"one", []string{"v=STSv1; id=a;"}, "v=STSv1; id=a;", true},
		{"among others", []string{"v=spf1 -all", "v=STSv1; id=a;", "hello"}, "v=STSv1; id=a;", true},
		{"blank after version", []string{"v=STSv1 ; id=a;"}, "v=STSv1 ; id=a;", true},
		{"future version ignored", []string{"v=STSv10; id=b;", "v=STSv1; id=a;"}, "v=STSv1; id=a;", true},
		{"none", []string{"v=spf1 -all"}, "", false},
		{"empty", nil, "", false},
		{"two", []string{"v=STSv1; id=a;", "v=STSv1; id=b;"}, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := stsRecord(tt.records)
			if got != tt.want || ok != tt.ok {
				t.Errorf("stsRecord = %q, %v; want %q, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}
