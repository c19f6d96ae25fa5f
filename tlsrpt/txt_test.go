package tlsrpt

import (
	"errors"
	"slices"
	"testing"
)

func TestParseTXT(t *testing.T) {
	tests := []struct {
		name    string
		records []string
		rua     []string
		err     error // nil means success
	}{
		{"mailto", []string{"v=TLSRPTv1; rua=mailto:tlsrpt@example.com"},
			[]string{"mailto:tlsrpt@example.com"}, nil},
		{"https", []string{"v=TLSRPTv1;rua=https://reports.example.com/v1/tlsrpt"},
			[]string{"https://reports.example.com/v1/tlsrpt"}, nil},
		{"several rua", []string{"v=TLSRPTv1; rua=mailto:a@example.com, https://r.example.com/x ,mailto:b@example.net"},
			[]string{"mailto:a@example.com", "https://r.example.com/x", "mailto:b@example.net"}, nil},
		{"space before delimiter", []string{"v=TLSRPTv1 ;\trua=mailto:a@example.com ;"},
			[]string{"mailto:a@example.com"}, nil},
		{"extension ignored", []string{"v=TLSRPTv1; ext.1=some-value; rua=mailto:a@example.com"},
			[]string{"mailto:a@example.com"}, nil},
		{"other TXT records discarded", []string{"google-site-verification=xyz", "v=TLSRPTv1; rua=mailto:a@example.com"},
			[]string{"mailto:a@example.com"}, nil},
		{"encoded comma in mailto", []string{"v=TLSRPTv1; rua=mailto:a@example.com%2Cb@example.com"},
			[]string{"mailto:a@example.com%2Cb@example.com"}, nil},
		{"mailto with query", []string{"v=TLSRPTv1; rua=mailto:a@example.com?subject=tls"},
			[]string{"mailto:a@example.com?subject=tls"}, nil},

		{"no records", nil, nil, ErrNoRecord},
		{"only other records", []string{"v=spf1 -all"}, nil, ErrNoRecord},
		{"bad version", []string{"v=TLSRPTv2; rua=mailto:a@example.com"}, nil, ErrNoRecord},
		{"version prefix", []string{"v=TLSRPTv10; rua=mailto:a@example.com"}, nil, ErrNoRecord},
		{"version is case-sensitive", []string{"v=tlsrptv1; rua=mailto:a@example.com"}, nil, ErrNoRecord},
		{"two records", []string{"v=TLSRPTv1; rua=mailto:a@example.com", "v=TLSRPTv1; rua=mailto:b@example.com"},
			nil, ErrMultipleRecords},
		{"missing rua", []string{"v=TLSRPTv1;"}, nil, ErrSyntax},
		{"version only", []string{"v=TLSRPTv1"}, nil, ErrSyntax},
		{"empty rua", []string{"v=TLSRPTv1; rua="}, nil, ErrSyntax},
		{"two rua fields", []string{"v=TLSRPTv1; rua=mailto:a@example.com; rua=mailto:b@example.com"}, nil, ErrSyntax},
		{"rua is case-sensitive", []string{"v=TLSRPTv1; RUA=mailto:a@example.com"}, nil, ErrSyntax},
		{"no scheme", []string{"v=TLSRPTv1; rua=a@example.com"}, nil, ErrSyntax},
		{"http", []string{"v=TLSRPTv1; rua=http://r.example.com/"}, nil, ErrSyntax},
		{"https without host", []string{"v=TLSRPTv1; rua=https:/path"}, nil, ErrSyntax},
		{"mailto without address", []string{"v=TLSRPTv1; rua=mailto:"}, nil, ErrSyntax},
		{"mailto not an address", []string{"v=TLSRPTv1; rua=mailto:nobody"}, nil, ErrSyntax},
		{"space in uri", []string{"v=TLSRPTv1; rua=mailto:a @example.com"}, nil, ErrSyntax},
		{"field without value", []string{"v=TLSRPTv1; rua=mailto:a@example.com; junk"}, nil, ErrSyntax},
		{"empty uri in list", []string{"v=TLSRPTv1; rua=mailto:a@example.com,,mailto:b@example.com"}, nil, ErrSyntax},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rua, err := ParseTXT(tc.records)
			if tc.err == nil {
				if err != nil || !slices.Equal(rua, tc.rua) {
					t.Fatalf("ParseTXT = %q, %v; want %q", rua, err, tc.rua)
				}
				return
			}
			if !errors.Is(err, tc.err) || rua != nil {
				t.Fatalf("ParseTXT = %q, %v; want error %v", rua, err, tc.err)
			}
		})
	}
}
