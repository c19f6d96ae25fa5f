package dane

import (
	"bytes"
	"crypto/x509"
	"errors"
	"testing"

	"github.com/mtad/mtad/resolver"
)

// FuzzVerify checks Verify against one random TLSA record and a fixed,
// valid chain for mx.test: it must not panic, must fail permanently
// unless the record is the real association of a certificate in the chain
// (the leaf for DANE-EE), and must succeed when it is.
func FuzzVerify(f *testing.F) {
	p := newPKI(f)
	chain := []*x509.Certificate{p.leaf, p.inter, p.ca}
	for _, usage := range []uint8{UsageDANETA, UsageDANEEE} {
		for _, selector := range []uint8{SelectorCert, SelectorSPKI} {
			for _, mt := range []uint8{MatchFull, MatchSHA256, MatchSHA512} {
				f.Add(usage, selector, mt, Association(p.leaf, selector, mt))
				f.Add(usage, selector, mt, Association(p.ca, selector, mt))
			}
		}
	}
	f.Add(uint8(1), uint8(1), uint8(1), Association(p.leaf, 1, 1))
	f.Add(uint8(3), uint8(1), uint8(1), make([]byte, 32))
	f.Add(uint8(2), uint8(0), uint8(0), p.ca.Raw[:len(p.ca.Raw)/2])
	f.Add(uint8(2), uint8(0), uint8(0), []byte{0x30, 0x82, 0xff, 0xff})
	f.Add(uint8(255), uint8(255), uint8(255), []byte(nil))
	f.Fuzz(func(t *testing.T, usage, selector, mt uint8, data []byte) {
		rec := resolver.TLSA{Usage: usage, Selector: selector, MatchingType: mt, Data: data}
		err := (&Policy{Records: []resolver.TLSA{rec}}).Verify(state(chain...), "mx.test", "example.test")
		real := isReal(rec, chain)
		switch {
		case err == nil && !real:
			t.Fatalf("record %d %d %d %x verified the chain", usage, selector, mt, data)
		case err != nil && real && anchorsKey(rec, chain) == nil:
			t.Fatalf("the real record %d %d %d failed: %v", usage, selector, mt, err)
		case err != nil:
			var e *Error
			if !errors.As(err, &e) || e.Temporary {
				t.Fatalf("error %v (%T) is not a permanent *Error", err, err)
			}
		}
	})
}

// isReal reports whether rec is usable and designates a certificate of
// chain: DANE-EE the leaf, DANE-TA any, or a full certificate in the
// record carrying the key of one (its own signature and other fields are
// not checked for a trust anchor).
func isReal(rec resolver.TLSA, chain []*x509.Certificate) bool {
	if !Usable(rec) {
		return false
	}
	if rec.Usage == UsageDANEEE {
		return bytes.Equal(rec.Data, Association(chain[0], rec.Selector, rec.MatchingType))
	}
	for _, c := range chain {
		if bytes.Equal(rec.Data, Association(c, rec.Selector, rec.MatchingType)) {
			return true
		}
	}
	return anchorsKey(rec, chain) != nil
}

// anchorsKey returns the chain certificate whose key a DANE-TA full
// certificate record carries, when the record is not that certificate.
func anchorsKey(rec resolver.TLSA, chain []*x509.Certificate) *x509.Certificate {
	if rec.Usage != UsageDANETA || rec.Selector != SelectorCert || rec.MatchingType != MatchFull {
		return nil
	}
	c, err := x509.ParseCertificate(rec.Data)
	if err != nil {
		return nil
	}
	for _, cc := range chain {
		if bytes.Equal(c.RawSubjectPublicKeyInfo, cc.RawSubjectPublicKeyInfo) && !bytes.Equal(c.Raw, cc.Raw) {
			return cc
		}
	}
	return nil
}
