package dane

import (
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/mtad/mtad/resolver"
	"golang.org/x/net/idna"
)

// TLSA certificate usages, selectors and matching types (RFC 7218).
const (
	UsageDANETA = 2
	UsageDANEEE = 3

	SelectorCert = 0
	SelectorSPKI = 1

	MatchFull   = 0
	MatchSHA256 = 1
	MatchSHA512 = 2
)

const defaultPort = 25

// Policy is what DANE says about one MX host: the usable TLSA records
// (usage DANE-TA(2) or DANE-EE(3), known selector and matching type, well
// formed data), at least one. A Policy is read-only once Lookup returns
// it.
type Policy struct {
	Records []resolver.TLSA
}

// TLSALookuper looks up TLSA records; *resolver.Resolver is one.
type TLSALookuper interface {
	LookupTLSA(ctx context.Context, name string) (resolver.TLSAResult, error)
}

var _ TLSALookuper = (*resolver.Resolver)(nil)

// Lookup decides DANE for mxHost, reached on port (0 means 25).
// mxAuthenticated says whether the MX RRset, or for an implicit MX the
// host's A/AAAA records, was DNSSEC-authenticated. It returns nil and no
// error when DANE does not apply, a Policy when it does, and an *Error
// when the TLSA lookup failed: temporary, unless the name is invalid. See
// the package doc for the table.
func Lookup(ctx context.Context, r TLSALookuper, mxHost string, port int, mxAuthenticated bool) (*Policy, error) {
	if !mxAuthenticated {
		// Tighter than RFC 7672 section 2.2.1, which lets a client use
		// DANE with hosts of an insecure MX RRset: whoever can forge the
		// MX can pick a host without TLSA records anyway.
		return nil, nil
	}
	name := tlsaName(mxHost, cmp.Or(port, defaultPort))
	res, err := r.LookupTLSA(ctx, name)
	if err != nil {
		return nil, lookupError(name, err)
	}
	if !res.Authenticated {
		return nil, nil // RFC 7672 section 2.2: insecure TLSA records are not used
	}
	var usable []resolver.TLSA
	for _, t := range res.Records {
		if Usable(t) {
			usable = append(usable, t)
		}
	}
	if len(usable) == 0 {
		return nil, nil // RFC 7672 section 3.1.3: as if there were none
	}
	return &Policy{Records: usable}, nil
}

// tlsaName returns the TLSA owner name for host and port (RFC 6698
// section 3), with host in ASCII.
func tlsaName(host string, port int) string {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if !isASCII(host) {
		if ascii, err := idna.Lookup.ToASCII(host); err == nil {
			host = ascii
		}
	}
	return "_" + strconv.Itoa(port) + "._tcp." + host
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// lookupError classifies a failed TLSA lookup. A DNS failure is
// temporary even when DANE is opportunistic: a validating resolver
// answers SERVFAIL for bogus records, and delivering without them would
// let an attacker strip DANE (RFC 7672 section 2.1.1).
func lookupError(name string, err error) *Error {
	err = fmt.Errorf("tlsa lookup %s: %w", name, err)
	var rerr *resolver.Error
	if errors.As(err, &rerr) && !rerr.Temporary {
		return permanent(ReasonTLSAInvalid, err)
	}
	return temporary(ReasonDNSSECInvalid, err)
}

// Usable reports whether t can take part in DANE for SMTP: usage
// DANE-TA(2) or DANE-EE(3), selector Cert(0) or SPKI(1), matching type
// Full(0) with data, SHA2-256(1) with 32 bytes or SHA2-512(2) with 64.
func Usable(t resolver.TLSA) bool {
	if t.Usage != UsageDANETA && t.Usage != UsageDANEEE {
		return false
	}
	if t.Selector != SelectorCert && t.Selector != SelectorSPKI {
		return false
	}
	switch t.MatchingType {
	case MatchFull:
		return len(t.Data) > 0
	case MatchSHA256:
		return len(t.Data) == sha256.Size
	case MatchSHA512:
		return len(t.Data) == sha512.Size
	}
	return false
}
