package resolver

import (
	"bytes"
	"context"
	"encoding/hex"
	"slices"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/mtad/mtad/internal/testdns"
)

const tlsaZone = `
$ORIGIN secure.test.
@                 IN SOA ns admin 1 3600 600 86400 60
_25._tcp.mx       IN TLSA 3 1 1 0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20
_25._tcp.mx       IN TLSA 2 0 2 aabb
_25._tcp.alias    IN CNAME _25._tcp.mx
_25._tcp.out      IN CNAME _25._tcp.mx.plain.test.
_25._tcp.servfail IN TLSA 3 1 1 00
mx                IN A 127.0.0.2
$ORIGIN plain.test.
@                 IN SOA ns admin 1 3600 600 86400 60
_25._tcp.mx       IN TLSA 3 0 0 3082
`

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

func TestLookupTLSA(t *testing.T) {
	s := testdns.Start(t, tlsaZone)
	s.SetAuthenticated("secure.test")
	r := newResolver(t, Config{}, s.Addr)
	secureRecords := []TLSA{
		{3, 1, 1, mustHex("0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20")},
		{2, 0, 2, mustHex("aabb")},
	}
	plainRecords := []TLSA{{3, 0, 0, mustHex("3082")}}
	tests := []struct {
		name  string
		qname string
		want  TLSAResult
	}{
		{"secure records", "_25._tcp.mx.secure.test", TLSAResult{secureRecords, true}},
		{"case and trailing dot", "_25._TCP.MX.Secure.Test.", TLSAResult{secureRecords, true}},
		{"cname within the secure zone", "_25._tcp.alias.secure.test", TLSAResult{secureRecords, true}},
		{"cname leaving the secure zone", "_25._tcp.out.secure.test", TLSAResult{plainRecords, false}},
		{"insecure records", "_25._tcp.mx.plain.test", TLSAResult{plainRecords, false}},
		{"secure nxdomain", "_25._tcp.nope.secure.test", TLSAResult{nil, true}},
		{"secure nodata", "mx.secure.test", TLSAResult{nil, true}},
		{"insecure nxdomain", "_25._tcp.nope.plain.test", TLSAResult{nil, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := r.LookupTLSA(context.Background(), tt.qname)
			if err != nil {
				t.Fatalf("LookupTLSA(%q): %v", tt.qname, err)
			}
			if !equalTLSA(got, tt.want) {
				t.Errorf("LookupTLSA(%q) = %+v, want %+v", tt.qname, got, tt.want)
			}
		})
	}
}

func equalTLSA(a, b TLSAResult) bool {
	return a.Authenticated == b.Authenticated && slices.EqualFunc(a.Records, b.Records, func(x, y TLSA) bool {
		return x.Usage == y.Usage && x.Selector == y.Selector && x.MatchingType == y.MatchingType &&
			bytes.Equal(x.Data, y.Data)
	})
}

func TestLookupTLSAErrors(t *testing.T) {
	s := testdns.Start(t, tlsaZone)
	s.SetAuthenticated("secure.test")
	s.SetRcode("_25._tcp.servfail.secure.test", dns.TypeTLSA, dns.RcodeServerFailure)
	r := newResolver(t, Config{}, s.Addr)
	_, err := r.LookupTLSA(context.Background(), "_25._tcp.servfail.secure.test")
	wantError(t, err, true, 451, "4.4.3", ErrServerFailure, "_25._tcp.servfail.secure.test")
	_, err = r.LookupTLSA(context.Background(), "_25._tcp..secure.test")
	wantError(t, err, false, 550, "5.1.2", ErrInvalidName, "_25._tcp..secure.test")

	silent := newResolver(t, Config{Timeout: 100 * time.Millisecond, Attempts: 1}, silentServer(t))
	_, err = silent.LookupTLSA(context.Background(), "_25._tcp.mx.secure.test")
	wantError(t, err, true, 451, "4.4.3", nil, "_25._tcp.mx.secure.test")
}

func TestLookupTLSACached(t *testing.T) {
	s := testdns.Start(t, tlsaZone)
	r := newResolver(t, Config{}, s.Addr)
	for _, name := range []string{"_25._tcp.mx.secure.test", "_25._tcp.nope.secure.test"} {
		before := s.Queries()
		for range 3 {
			if _, err := r.LookupTLSA(context.Background(), name); err != nil {
				t.Fatalf("LookupTLSA(%q): %v", name, err)
			}
		}
		if n := s.Queries() - before; n != 1 {
			t.Errorf("%s: %d queries for 3 lookups, want 1", name, n)
		}
	}
}
