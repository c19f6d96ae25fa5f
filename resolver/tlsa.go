package resolver

import (
	"context"
	"encoding/hex"

	"github.com/miekg/dns"
)

// TLSA is one TLSA record (RFC 6698 section 2.1): how to match a TLS
// server's certificate chain.
type TLSA struct {
	Usage        uint8 // 0 PKIX-TA, 1 PKIX-EE, 2 DANE-TA, 3 DANE-EE (RFC 7218)
	Selector     uint8 // 0 Cert, 1 SPKI
	MatchingType uint8 // 0 Full, 1 SHA2-256, 2 SHA2-512
	Data         []byte
}

// TLSAResult is the outcome of LookupTLSA.
type TLSAResult struct {
	Records []TLSA
	// Authenticated reports that every response used had the AD bit: the
	// records, or the denial that there are any, were validated with
	// DNSSEC.
	Authenticated bool
}

// LookupTLSA returns the TLSA records at name, such as
// "_25._tcp.mx.example.com", following CNAMEs (RFC 7672 section 2.2.2);
// the result is authenticated only if every link is. A name that does
// not exist or has no TLSA records gives an empty result and no error;
// Authenticated then says whether the denial was validated. The error is
// an *Error: temporary 451 4.4.3 when the DNS failed, permanent 550 5.1.2
// for an invalid name.
func (r *Resolver) LookupTLSA(ctx context.Context, name string) (TLSAResult, error) {
	fqdn, err := normalize(name)
	if err != nil {
		return TLSAResult{}, notFound(name, err)
	}
	ans, err := r.lookup(ctx, dns.Fqdn(fqdn), dns.TypeTLSA)
	if err != nil {
		return TLSAResult{}, temporary(fqdn, err)
	}
	res := TLSAResult{Authenticated: ans.authenticated}
	for _, rr := range ans.records {
		if t, ok := tlsaOf(rr.(*dns.TLSA)); ok {
			res.Records = append(res.Records, t)
		}
	}
	return res, nil
}

// tlsaOf converts rr, whose association data miekg/dns keeps as hex.
func tlsaOf(rr *dns.TLSA) (TLSA, bool) {
	data, err := hex.DecodeString(rr.Certificate)
	if err != nil {
		return TLSA{}, false
	}
	return TLSA{Usage: rr.Usage, Selector: rr.Selector, MatchingType: rr.MatchingType, Data: data}, true
}
