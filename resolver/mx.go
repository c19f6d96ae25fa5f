package resolver

import (
	"cmp"
	"context"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/miekg/dns"
)

// MX is one mail exchanger of a domain.
type MX struct {
	Host     string // lower-case, no trailing dot
	Pref     uint16
	Implicit bool // no MX records: the domain itself (RFC 5321 section 5.1)
}

// MXResult is the outcome of LookupMXFull.
type MXResult struct {
	Records []MX
	// Authenticated reports that every response used had the AD bit: the
	// nameserver validated the MX RRset (and any CNAMEs) with DNSSEC.
	Authenticated bool
}

// LookupMX returns the mail exchangers of domain in the order to try them.
// See LookupMXFull.
func (r *Resolver) LookupMX(ctx context.Context, domain string) ([]MX, error) {
	res, err := r.LookupMXFull(ctx, domain)
	return res.Records, err
}

// LookupMXFull returns the mail exchangers of domain sorted by preference,
// equal preferences in random order, or the implicit MX when the domain
// exists without MX records. A CNAME at the domain is followed. The error
// is an *Error: permanent 556 5.1.10 for a null MX, permanent 550 5.1.2 for
// a domain that does not exist, temporary 451 4.4.3 when the DNS failed.
func (r *Resolver) LookupMXFull(ctx context.Context, domain string) (MXResult, error) {
	name, err := normalize(domain)
	if err != nil {
		return MXResult{}, notFound(domain, err)
	}
	ans, err := r.lookup(ctx, dns.Fqdn(name), dns.TypeMX)
	switch {
	case err != nil:
		return MXResult{}, temporary(name, err)
	case ans.nxdomain:
		return MXResult{}, notFound(name, ErrNoSuchDomain)
	case isNullMX(ans.records):
		return MXResult{}, nullMX(name)
	}
	res := MXResult{Records: sortMX(ans.records), Authenticated: ans.authenticated}
	if len(res.Records) == 0 {
		res.Records = []MX{{Host: name, Implicit: true}}
	}
	return res, nil
}

// isNullMX reports a null MX (RFC 7505 section 3): a single MX with
// preference 0 and target ".". Records whose only targets are "." are
// treated alike: there is nowhere to deliver.
func isNullMX(rrs []dns.RR) bool {
	for _, rr := range rrs {
		if rr.(*dns.MX).Mx != "." {
			return false
		}
	}
	return len(rrs) > 0
}

// sortMX converts MX records, skipping "." targets, and orders them by
// preference with ties in random order (RFC 5321 section 5.1).
func sortMX(rrs []dns.RR) []MX {
	out := make([]MX, 0, len(rrs))
	for _, rr := range rrs {
		mx := rr.(*dns.MX)
		if mx.Mx == "." {
			continue
		}
		host := strings.ToLower(strings.TrimSuffix(mx.Mx, "."))
		out = append(out, MX{Host: host, Pref: mx.Preference})
	}
	rand.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	slices.SortStableFunc(out, func(a, b MX) int { return cmp.Compare(a.Pref, b.Pref) })
	return out
}
