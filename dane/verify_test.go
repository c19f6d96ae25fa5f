package dane

import (
	"crypto/x509"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/mtad/mtad/resolver"
)

// record returns the TLSA record of usage, selector and matching type
// that matches c.
func record(usage, selector, matchingType uint8, c *x509.Certificate) resolver.TLSA {
	return resolver.TLSA{Usage: usage, Selector: selector, MatchingType: matchingType,
		Data: Association(c, selector, matchingType)}
}

// wantDANEError checks that err is an *Error with the given
// classification and sentinel.
func wantDANEError(t *testing.T, err error, temporary bool, reason string, sentinel error) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not an *Error", err, err)
	}
	code, enhanced := 550, "5.7.5"
	if temporary {
		code, enhanced = 451, "4.7.5"
	}
	if e.Temporary != temporary || e.Code != code || e.Enhanced != enhanced || e.Reason != reason {
		t.Errorf("error %q: temporary %v, %d %s, reason %q; want %v, %d %s, %q",
			err, e.Temporary, e.Code, e.Enhanced, e.Reason, temporary, code, enhanced, reason)
	}
	if sentinel != nil && !errors.Is(err, sentinel) {
		t.Errorf("error %q does not match %q", err, sentinel)
	}
}

func TestVerifyEE(t *testing.T) {
	p := newPKI(t)
	now := time.Now()
	expiredOther := p.newLeaf(t, now.Add(-48*time.Hour), now.Add(-24*time.Hour), "other.test")
	for _, selector := range []uint8{SelectorCert, SelectorSPKI} {
		for _, mt := range []uint8{MatchFull, MatchSHA256, MatchSHA512} {
			t.Run(fmt.Sprintf("3 %d %d", selector, mt), func(t *testing.T) {
				pol := &Policy{Records: []resolver.TLSA{record(UsageDANEEE, selector, mt, p.leaf)}}
				if err := pol.Verify(state(p.leaf, p.inter), "mx.test", "example.test"); err != nil {
					t.Errorf("Verify: %v", err)
				}
				// Names and dates do not matter to DANE-EE, nor does the chain.
				pol = &Policy{Records: []resolver.TLSA{record(UsageDANEEE, selector, mt, expiredOther)}}
				if err := pol.Verify(state(expiredOther), "mx.test", "example.test"); err != nil {
					t.Errorf("Verify of an expired leaf for another name: %v", err)
				}
			})
		}
	}
}

func TestVerifyEEMismatch(t *testing.T) {
	p := newPKI(t)
	other := p.newLeaf(t, time.Now().Add(-time.Hour), time.Now().Add(time.Hour), "mx.test")
	tests := []struct {
		name    string
		records []resolver.TLSA
	}{
		{"other certificate", []resolver.TLSA{record(UsageDANEEE, SelectorCert, MatchSHA256, other)}},
		{"other key", []resolver.TLSA{record(UsageDANEEE, SelectorSPKI, MatchSHA512, other)}},
		{"ee record for the ca", []resolver.TLSA{record(UsageDANEEE, SelectorSPKI, MatchSHA256, p.ca)}},
		{"unusable pkix-ee", []resolver.TLSA{record(1, SelectorSPKI, MatchSHA256, p.leaf)}},
		{"unknown matching type", []resolver.TLSA{{Usage: UsageDANEEE, Selector: SelectorSPKI, MatchingType: 3,
			Data: Association(p.leaf, SelectorSPKI, MatchSHA256)}}},
		{"truncated digest", []resolver.TLSA{{Usage: UsageDANEEE, Selector: SelectorCert, MatchingType: MatchSHA256,
			Data: Association(p.leaf, SelectorCert, MatchSHA256)[:16]}}},
		{"no records", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pol := &Policy{Records: tt.records}
			err := pol.Verify(state(p.leaf, p.inter, p.ca), "mx.test", "example.test")
			wantDANEError(t, err, false, ReasonValidationFailure, ErrNoMatch)
		})
	}
}

func TestVerifyTA(t *testing.T) {
	p := newPKI(t)
	now := time.Now()
	wildcard := p.newLeaf(t, now.Add(-time.Hour), now.Add(time.Hour), "*.test")
	forDomain := p.newLeaf(t, now.Add(-time.Hour), now.Add(time.Hour), "example.test")
	tests := []struct {
		name    string
		records []resolver.TLSA
		chain   []*x509.Certificate
	}{
		{"ca cert sha256", []resolver.TLSA{record(UsageDANETA, SelectorCert, MatchSHA256, p.ca)},
			[]*x509.Certificate{p.leaf, p.inter, p.ca}},
		{"ca spki sha256", []resolver.TLSA{record(UsageDANETA, SelectorSPKI, MatchSHA256, p.ca)},
			[]*x509.Certificate{p.leaf, p.inter, p.ca}},
		{"ca bare spki", []resolver.TLSA{record(UsageDANETA, SelectorSPKI, MatchFull, p.ca)},
			[]*x509.Certificate{p.leaf, p.inter, p.ca}},
		{"ca cert sha512", []resolver.TLSA{record(UsageDANETA, SelectorCert, MatchSHA512, p.ca)},
			[]*x509.Certificate{p.leaf, p.inter, p.ca}},
		{"full ca cert not presented", []resolver.TLSA{record(UsageDANETA, SelectorCert, MatchFull, p.ca)},
			[]*x509.Certificate{p.leaf, p.inter}},
		{"intermediate", []resolver.TLSA{record(UsageDANETA, SelectorSPKI, MatchSHA256, p.inter)},
			[]*x509.Certificate{p.leaf, p.inter}},
		{"one matching record of several", []resolver.TLSA{
			record(UsageDANEEE, SelectorSPKI, MatchSHA256, wildcard),
			record(UsageDANETA, SelectorSPKI, MatchSHA256, wildcard),
			record(UsageDANETA, SelectorCert, MatchSHA256, p.ca),
		}, []*x509.Certificate{p.leaf, p.inter, p.ca}},
		{"wildcard name", []resolver.TLSA{record(UsageDANETA, SelectorCert, MatchSHA256, p.ca)},
			[]*x509.Certificate{wildcard, p.inter, p.ca}},
		{"name of the domain", []resolver.TLSA{record(UsageDANETA, SelectorCert, MatchSHA256, p.ca)},
			[]*x509.Certificate{forDomain, p.inter, p.ca}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pol := &Policy{Records: tt.records}
			if err := pol.Verify(state(tt.chain...), "MX.test.", "example.test"); err != nil {
				t.Errorf("Verify: %v", err)
			}
		})
	}
}

func TestVerifyTAFailures(t *testing.T) {
	p := newPKI(t)
	now := time.Now()
	wrongName := p.newLeaf(t, now.Add(-time.Hour), now.Add(time.Hour), "other.example")
	expired := p.newLeaf(t, now.Add(-48*time.Hour), now.Add(-24*time.Hour), "mx.test")
	notYet := p.newLeaf(t, now.Add(24*time.Hour), now.Add(48*time.Hour), "mx.test")
	other := newPKI(t)
	caRecord := []resolver.TLSA{record(UsageDANETA, SelectorSPKI, MatchSHA256, p.ca)}
	tests := []struct {
		name     string
		records  []resolver.TLSA
		chain    []*x509.Certificate
		reason   string
		sentinel error
	}{
		{"leaf name wrong", caRecord, []*x509.Certificate{wrongName, p.inter, p.ca},
			ReasonHostMismatch, ErrHostMismatch},
		{"leaf expired", caRecord, []*x509.Certificate{expired, p.inter, p.ca},
			ReasonCertificateExpired, ErrNoMatch},
		{"leaf not yet valid", caRecord, []*x509.Certificate{notYet, p.inter, p.ca},
			ReasonCertificateExpired, ErrNoMatch},
		{"ta not presented", caRecord, []*x509.Certificate{p.leaf, p.inter},
			ReasonValidationFailure, ErrNoMatch},
		{"anchor does not sign the chain", caRecord, []*x509.Certificate{other.leaf, other.inter, p.ca},
			ReasonValidationFailure, ErrNoMatch},
		{"intermediate missing", caRecord, []*x509.Certificate{p.leaf, p.ca},
			ReasonValidationFailure, ErrNoMatch},
		{"other ca", []resolver.TLSA{record(UsageDANETA, SelectorCert, MatchSHA256, other.ca)},
			[]*x509.Certificate{p.leaf, p.inter, p.ca}, ReasonValidationFailure, ErrNoMatch},
		{"pkix-ta is unusable", []resolver.TLSA{record(0, SelectorCert, MatchSHA256, p.ca)},
			[]*x509.Certificate{p.leaf, p.inter, p.ca}, ReasonValidationFailure, ErrNoMatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pol := &Policy{Records: tt.records}
			err := pol.Verify(state(tt.chain...), "mx.test", "example.test")
			wantDANEError(t, err, false, tt.reason, tt.sentinel)
		})
	}
}

func TestVerifyNoCertificates(t *testing.T) {
	p := newPKI(t)
	pol := &Policy{Records: []resolver.TLSA{record(UsageDANEEE, SelectorSPKI, MatchSHA256, p.leaf)}}
	err := pol.Verify(state(), "mx.test", "example.test")
	wantDANEError(t, err, true, ReasonValidationFailure, ErrNoCertificates)
}

func TestVerifyNilPolicy(t *testing.T) {
	p := newPKI(t)
	var pol *Policy
	err := pol.Verify(state(p.leaf, p.inter, p.ca), "mx.test", "example.test")
	wantDANEError(t, err, false, ReasonValidationFailure, ErrNoMatch)
}

func TestRequired(t *testing.T) {
	err := Required("mx.test")
	wantDANEError(t, err, false, ReasonDANERequired, ErrRequired)
	if msg := err.Error(); msg != "dane: mx.test: "+ErrRequired.Error() {
		t.Errorf("Error() = %q", msg)
	}
}
