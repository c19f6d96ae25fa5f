package dane

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"

	"github.com/mtad/mtad/resolver"
	"golang.org/x/net/idna"
)

// Verify checks the certificate chain a server presented against p (RFC
// 7672 section 3.1). mxHost and domain are the reference identifiers a
// DANE-TA(2) chain's leaf must name (RFC 7672 section 3.2.2); DANE-EE(3)
// ignores names and dates. It returns nil when the server is
// authenticated, else an *Error: temporary when no certificate was
// presented, permanent otherwise. A nil Policy authenticates nothing.
func (p *Policy) Verify(cs tls.ConnectionState, mxHost, domain string) error {
	chain := cs.PeerCertificates
	if len(chain) == 0 {
		return temporary(ReasonValidationFailure, fmt.Errorf("%s: %w", mxHost, ErrNoCertificates))
	}
	var records []resolver.TLSA
	if p != nil {
		records = p.Records
	}
	if matchesEE(records, chain[0]) {
		return nil // RFC 7672 section 3.1.1
	}
	anchors := trustAnchors(records, chain)
	if anchors == nil {
		return permanent(ReasonValidationFailure, fmt.Errorf("%s: %w", mxHost, ErrNoMatch))
	}
	return verifyChain(chain, anchors, mxHost, domain)
}

// matchesEE reports whether a DANE-EE(3) record matches leaf.
func matchesEE(records []resolver.TLSA, leaf *x509.Certificate) bool {
	for _, t := range records {
		if t.Usage == UsageDANEEE && matches(t, leaf) {
			return true
		}
	}
	return false
}

// trustAnchors returns the certificates DANE-TA(2) records designate
// (RFC 7672 section 3.1.2): those of the chain a record matches, by
// certificate or by key, and a full certificate given in a record. It
// returns nil when there are none.
func trustAnchors(records []resolver.TLSA, chain []*x509.Certificate) *x509.CertPool {
	pool, found := x509.NewCertPool(), false
	for _, t := range records {
		if t.Usage != UsageDANETA {
			continue
		}
		for _, c := range chain {
			if matches(t, c) {
				pool.AddCert(c)
				found = true
			}
		}
		if t.Selector == SelectorCert && t.MatchingType == MatchFull && Usable(t) {
			if c, err := x509.ParseCertificate(t.Data); err == nil {
				pool.AddCert(c)
				found = true
			}
		}
	}
	if !found {
		return nil
	}
	return pool
}

// verifyChain checks that the leaf of chain chains to one of anchors
// through the rest of chain, is valid now, allows server authentication
// and names mxHost or domain.
func verifyChain(chain []*x509.Certificate, anchors *x509.CertPool, mxHost, domain string) error {
	intermediates := x509.NewCertPool()
	for _, c := range chain[1:] {
		intermediates.AddCert(c)
	}
	leaf := chain[0]
	_, err := leaf.Verify(x509.VerifyOptions{
		Roots:         anchors,
		Intermediates: intermediates,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	if err != nil {
		return chainError(mxHost, err)
	}
	if !namesEither(leaf, mxHost, domain) {
		return permanent(ReasonHostMismatch, fmt.Errorf("%s: %w", mxHost, ErrHostMismatch))
	}
	return nil
}

func chainError(mxHost string, err error) *Error {
	err = fmt.Errorf("%s: %w: %w", mxHost, ErrNoMatch, err)
	var invalid x509.CertificateInvalidError
	if errors.As(err, &invalid) && invalid.Reason == x509.Expired {
		return permanent(ReasonCertificateExpired, err)
	}
	return permanent(ReasonValidationFailure, err)
}

// namesEither reports whether leaf's DNS names cover one of names, taken
// in ASCII without a trailing dot. Empty names are skipped.
func namesEither(leaf *x509.Certificate, names ...string) bool {
	for _, name := range names {
		name = strings.TrimSuffix(name, ".")
		if !isASCII(name) {
			ascii, err := idna.Lookup.ToASCII(name)
			if err != nil {
				continue
			}
			name = ascii
		}
		if name != "" && leaf.VerifyHostname(name) == nil {
			return true
		}
	}
	return false
}

// matches reports whether the usable record t matches c.
func matches(t resolver.TLSA, c *x509.Certificate) bool {
	a := Association(c, t.Selector, t.MatchingType)
	return a != nil && Usable(t) && bytes.Equal(a, t.Data)
}

// Association returns the certificate association data of c for selector
// and matching type (RFC 6698 section 2.1): the DER certificate or its
// SubjectPublicKeyInfo, as is (c's own bytes, not to be modified) or
// hashed. It returns nil for an unknown selector or matching type.
func Association(c *x509.Certificate, selector, matchingType uint8) []byte {
	var content []byte
	switch selector {
	case SelectorCert:
		content = c.Raw
	case SelectorSPKI:
		content = c.RawSubjectPublicKeyInfo
	default:
		return nil
	}
	switch matchingType {
	case MatchFull:
		return content
	case MatchSHA256:
		sum := sha256.Sum256(content)
		return sum[:]
	case MatchSHA512:
		sum := sha512.Sum512(content)
		return sum[:]
	}
	return nil
}
