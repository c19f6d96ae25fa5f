package resolver

import (
	"context"
	"encoding/binary"
	"slices"
	"testing"

	"github.com/miekg/dns"
	"github.com/mtad/mtad/internal/testdns"
)

const txtZone = `
$ORIGIN secure.test.
@            IN SOA ns admin 1 3600 600 86400 60
_mta-sts     IN TXT "v=STSv1; id=20240101"
split        IN TXT "v=TLSRPTv1; " "rua=mailto:tls@secure.test"
two          IN TXT "one"
two          IN TXT "two"
escaped      IN TXT "q\"b\\s\200e"
alias        IN CNAME _mta-sts
nodata       IN A 127.0.0.2
$ORIGIN plain.test.
_mta-sts     IN TXT "v=STSv1; id=1"
`

func TestLookupTXT(t *testing.T) {
	s := testdns.Start(t, txtZone)
	s.SetAuthenticated("secure.test")
	r := newResolver(t, Config{}, s.Addr)
	tests := []struct {
		name  string
		qname string
		want  []string
		auth  bool
	}{
		{"one record", "_mta-sts.secure.test", []string{"v=STSv1; id=20240101"}, true},
		{"strings joined", "split.secure.test", []string{"v=TLSRPTv1; rua=mailto:tls@secure.test"}, true},
		{"two records", "two.secure.test", []string{"one", "two"}, true},
		{"bytes as on the wire", "escaped.secure.test", []string{"q\"b\\s\xc8e"}, true},
		{"cname", "alias.secure.test", []string{"v=STSv1; id=20240101"}, true},
		{"nodata", "nodata.secure.test", nil, true},
		{"insecure", "_mta-sts.plain.test", []string{"v=STSv1; id=1"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := r.LookupTXT(context.Background(), tt.qname)
			if err != nil {
				t.Fatalf("LookupTXT(%q): %v", tt.qname, err)
			}
			slices.Sort(got.Records)
			if !slices.Equal(got.Records, tt.want) || got.Authenticated != tt.auth {
				t.Errorf("LookupTXT(%q) = %q, authenticated %v; want %q, %v",
					tt.qname, got.Records, got.Authenticated, tt.want, tt.auth)
			}
		})
	}
}

func TestLookupTXTErrors(t *testing.T) {
	s := testdns.Start(t, txtZone)
	s.SetRcode("servfail.secure.test", dns.TypeTXT, dns.RcodeServerFailure)
	r := newResolver(t, Config{}, s.Addr)
	tests := []struct {
		name      string
		qname     string
		temporary bool
		code      int
		enhanced  string
		sentinel  error
	}{
		{"nxdomain", "_mta-sts.nope.secure.test", false, 550, "5.1.2", ErrNoSuchDomain},
		{"servfail", "servfail.secure.test", true, 451, "4.4.3", ErrServerFailure},
		{"invalid name", "a..secure.test", false, 550, "5.1.2", ErrInvalidName},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := r.LookupTXT(context.Background(), tt.qname)
			if got.Records != nil {
				t.Errorf("LookupTXT(%q) = %q with an error", tt.qname, got.Records)
			}
			wantError(t, err, tt.temporary, tt.code, tt.enhanced, tt.sentinel, tt.qname)
		})
	}
}

// FuzzUnescapeTXT checks that unescapeTXT recovers the bytes of a
// character-string from the escaped form miekg/dns unpacks it to.
func FuzzUnescapeTXT(f *testing.F) {
	for _, seed := range []string{"", "v=STSv1; id=1", `a"b\c`, "\x00\xff\\123", `\\\"`, "\\0", "é"} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		if len(raw) > 255 {
			raw = raw[:255]
		}
		rr, err := unpackTXT(raw)
		if err != nil {
			t.Fatalf("unpack: %v", err)
		}
		if got := unescapeTXT(rr.Txt[0]); got != string(raw) {
			t.Errorf("unescapeTXT(%q) = %q, want %q", rr.Txt[0], got, raw)
		}
	})
}

// unpackTXT unpacks a TXT record for the root name whose RDATA is the one
// character-string raw.
func unpackTXT(raw []byte) (*dns.TXT, error) {
	wire := []byte{0, 0, byte(dns.TypeTXT), 0, byte(dns.ClassINET), 0, 0, 0, 60}
	wire = binary.BigEndian.AppendUint16(wire, uint16(len(raw)+1))
	wire = append(wire, byte(len(raw)))
	wire = append(wire, raw...)
	rr, _, err := dns.UnpackRR(wire, 0)
	if err != nil {
		return nil, err
	}
	return rr.(*dns.TXT), nil
}
