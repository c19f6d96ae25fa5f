package dane

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/mtad/mtad/internal/testdns"
	"github.com/mtad/mtad/resolver"
)

const (
	sha256Hex = "0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20"
	sha512Hex = sha256Hex + sha256Hex
)

// The zone signed.test is DNSSEC-validated (SetAuthenticated), plain.test
// is not. Each domain's MX points at the host the test case is about.
const zone = `
$ORIGIN signed.test.
@                  IN SOA ns admin 1 3600 600 86400 60
usable             IN MX 10 mx.signed.test.
mx                 IN A 127.0.0.2
_25._tcp.mx        IN TLSA 3 1 1 ` + sha256Hex + `
_25._tcp.mx        IN TLSA 2 0 2 ` + sha512Hex + `
_25._tcp.mx        IN TLSA 1 1 1 ` + sha256Hex + `
_2525._tcp.mx      IN TLSA 3 0 1 ` + sha256Hex + `
unusable           IN MX 10 old.signed.test.
old                IN A 127.0.0.3
_25._tcp.old       IN TLSA 0 0 1 ` + sha256Hex + `
_25._tcp.old       IN TLSA 1 1 1 ` + sha256Hex + `
_25._tcp.old       IN TLSA 4 1 1 ` + sha256Hex + `
_25._tcp.old       IN TLSA 3 2 1 ` + sha256Hex + `
_25._tcp.old       IN TLSA 3 1 3 ` + sha256Hex + `
_25._tcp.old       IN TLSA 3 1 1 0102
_25._tcp.old       IN TLSA 2 1 2 ` + sha256Hex + `
nodata             IN MX 10 bare.signed.test.
bare               IN A 127.0.0.4
nxdomain           IN MX 10 gone.signed.test.
servfail           IN MX 10 broken.signed.test.
broken             IN A 127.0.0.5
_25._tcp.broken    IN TLSA 3 1 1 ` + sha256Hex + `
insecure-tlsa      IN MX 10 mx.plain.test.
$ORIGIN plain.test.
@                  IN SOA ns admin 1 3600 600 86400 60
insecure-mx        IN MX 10 mx.signed.test.
mx                 IN A 127.0.0.6
_25._tcp.mx        IN TLSA 3 1 1 ` + sha256Hex + `
`

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

func startDNS(t *testing.T) (*testdns.Server, *resolver.Resolver) {
	t.Helper()
	s := testdns.Start(t, zone)
	s.SetAuthenticated("signed.test")
	s.SetRcode("_25._tcp.broken.signed.test", dns.TypeTLSA, dns.RcodeServerFailure)
	r, err := resolver.New(resolver.Config{Nameservers: []string{s.Addr}, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return s, r
}

// lookupDomain does what delivery does: the MX lookup, then Lookup for the
// first host with the MX RRset's authentication.
func lookupDomain(t *testing.T, r *resolver.Resolver, domain string, port int) (*Policy, error) {
	t.Helper()
	mx, err := r.LookupMXFull(context.Background(), domain)
	if err != nil {
		t.Fatalf("LookupMXFull(%q): %v", domain, err)
	}
	return Lookup(context.Background(), r, mx.Records[0].Host, port, mx.Authenticated)
}

func TestLookup(t *testing.T) {
	_, r := startDNS(t)
	tests := []struct {
		name   string
		domain string
		port   int
		want   []resolver.TLSA // nil: no DANE
	}{
		{"usable records", "usable.signed.test", 25, []resolver.TLSA{
			{Usage: 3, Selector: 1, MatchingType: 1, Data: mustHex(sha256Hex)},
			{Usage: 2, Selector: 0, MatchingType: 2, Data: mustHex(sha512Hex)},
		}},
		{"port 0 is 25", "usable.signed.test", 0, []resolver.TLSA{
			{Usage: 3, Selector: 1, MatchingType: 1, Data: mustHex(sha256Hex)},
			{Usage: 2, Selector: 0, MatchingType: 2, Data: mustHex(sha512Hex)},
		}},
		{"other port", "usable.signed.test", 2525, []resolver.TLSA{
			{Usage: 3, Selector: 0, MatchingType: 1, Data: mustHex(sha256Hex)},
		}},
		{"mx not authenticated", "insecure-mx.plain.test", 25, nil},
		{"tlsa not authenticated", "insecure-tlsa.signed.test", 25, nil},
		{"authenticated nodata", "nodata.signed.test", 25, nil},
		{"authenticated nxdomain", "nxdomain.signed.test", 25, nil},
		{"no usable records", "unusable.signed.test", 25, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pol, err := lookupDomain(t, r, tt.domain, tt.port)
			if err != nil {
				t.Fatalf("Lookup: %v", err)
			}
			switch {
			case tt.want == nil && pol != nil:
				t.Errorf("Lookup = %+v, want no DANE", pol.Records)
			case tt.want != nil && pol == nil:
				t.Errorf("Lookup = no DANE, want %+v", tt.want)
			case tt.want != nil && !equalRecords(pol.Records, tt.want):
				t.Errorf("Lookup = %+v, want %+v", pol.Records, tt.want)
			}
		})
	}
}

func equalRecords(a, b []resolver.TLSA) bool {
	sortRecords(a)
	sortRecords(b)
	return slices.EqualFunc(a, b, func(x, y resolver.TLSA) bool {
		return x.Usage == y.Usage && x.Selector == y.Selector && x.MatchingType == y.MatchingType &&
			bytes.Equal(x.Data, y.Data)
	})
}

func sortRecords(rs []resolver.TLSA) {
	slices.SortFunc(rs, func(x, y resolver.TLSA) int { return int(y.Usage) - int(x.Usage) })
}

func TestLookupInsecureMXAsksNothing(t *testing.T) {
	s, r := startDNS(t)
	before := s.Queries()
	pol, err := Lookup(context.Background(), r, "mx.signed.test", 25, false)
	if pol != nil || err != nil {
		t.Errorf("Lookup = %v, %v; want no DANE", pol, err)
	}
	if n := s.Queries() - before; n != 0 {
		t.Errorf("%d queries for an unauthenticated MX, want none", n)
	}
}

func TestLookupTemporaryFailures(t *testing.T) {
	_, r := startDNS(t)
	pc, err := net.ListenPacket("udp", "127.0.0.1:0") // never answers
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	silent, err := resolver.New(resolver.Config{Nameservers: []string{pc.LocalAddr().String()},
		Timeout: 100 * time.Millisecond, Attempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		r        TLSALookuper
		host     string
		sentinel error
	}{
		{"servfail", r, "broken.signed.test", resolver.ErrServerFailure},
		{"timeout", silent, "mx.signed.test", nil},
		{"unclassified error", fakeLookuper{errors.New("boom")}, "mx.signed.test", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pol, err := Lookup(context.Background(), tt.r, tt.host, 25, true)
			if pol != nil {
				t.Errorf("Lookup = %+v with an error", pol.Records)
			}
			wantDANEError(t, err, true, ReasonDNSSECInvalid, tt.sentinel)
			if !strings.Contains(err.Error(), "_25._tcp."+tt.host) {
				t.Errorf("error %q does not name the TLSA name", err)
			}
		})
	}
}

func TestLookupPermanentResolverError(t *testing.T) {
	err := &resolver.Error{Code: 550, Enhanced: "5.1.2", Name: "x", Err: resolver.ErrInvalidName}
	_, got := Lookup(context.Background(), fakeLookuper{err}, "bad..host", 25, true)
	wantDANEError(t, got, false, ReasonTLSAInvalid, resolver.ErrInvalidName)
}

func TestLookupIDN(t *testing.T) {
	var asked string
	f := lookupFunc(func(name string) { asked = name })
	Lookup(context.Background(), f, "MX.Bücher.Test.", 25, true)
	if want := "_25._tcp.mx.xn--bcher-kva.test"; asked != want {
		t.Errorf("asked for %q, want %q", asked, want)
	}
}

type fakeLookuper struct{ err error }

func (f fakeLookuper) LookupTLSA(context.Context, string) (resolver.TLSAResult, error) {
	return resolver.TLSAResult{}, f.err
}

type lookupFunc func(name string)

func (f lookupFunc) LookupTLSA(_ context.Context, name string) (resolver.TLSAResult, error) {
	f(name)
	return resolver.TLSAResult{}, nil
}

func TestUsable(t *testing.T) {
	digest := func(n int) []byte { return make([]byte, n) }
	tests := []struct {
		t    resolver.TLSA
		want bool
	}{
		{resolver.TLSA{Usage: 3, Selector: 1, MatchingType: 1, Data: digest(32)}, true},
		{resolver.TLSA{Usage: 2, Selector: 0, MatchingType: 2, Data: digest(64)}, true},
		{resolver.TLSA{Usage: 3, Selector: 0, MatchingType: 0, Data: digest(1)}, true},
		{resolver.TLSA{Usage: 0, Selector: 1, MatchingType: 1, Data: digest(32)}, false},
		{resolver.TLSA{Usage: 1, Selector: 1, MatchingType: 1, Data: digest(32)}, false},
		{resolver.TLSA{Usage: 4, Selector: 1, MatchingType: 1, Data: digest(32)}, false},
		{resolver.TLSA{Usage: 3, Selector: 2, MatchingType: 1, Data: digest(32)}, false},
		{resolver.TLSA{Usage: 3, Selector: 1, MatchingType: 3, Data: digest(32)}, false},
		{resolver.TLSA{Usage: 3, Selector: 1, MatchingType: 1, Data: digest(31)}, false},
		{resolver.TLSA{Usage: 3, Selector: 1, MatchingType: 2, Data: digest(32)}, false},
		{resolver.TLSA{Usage: 3, Selector: 1, MatchingType: 0, Data: nil}, false},
	}
	for _, tt := range tests {
		if got := Usable(tt.t); got != tt.want {
			t.Errorf("Usable(%d %d %d, %d bytes) = %v, want %v",
				tt.t.Usage, tt.t.Selector, tt.t.MatchingType, len(tt.t.Data), got, tt.want)
		}
	}
}
