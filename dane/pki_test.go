package dane

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"sync/atomic"
	"testing"
	"time"
)

// pki is a CA, an intermediate signed by it, and leaves signed by the
// intermediate, made fresh for each test run.
type pki struct {
	ca, inter *x509.Certificate
	interKey  *ecdsa.PrivateKey
	leaf      *x509.Certificate // for mx.test, valid now
}

var serial atomic.Int64 // certificate serial numbers

func newPKI(t testing.TB) *pki {
	t.Helper()
	now := time.Now()
	ca, caKey := issue(t, &x509.Certificate{
		Subject:               pkix.Name{CommonName: "Test Root CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}, nil, nil)
	inter, interKey := issue(t, &x509.Certificate{
		Subject:               pkix.Name{CommonName: "Test Intermediate CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}, ca, caKey)
	p := &pki{ca: ca, inter: inter, interKey: interKey}
	p.leaf = p.newLeaf(t, now.Add(-time.Hour), now.Add(24*time.Hour), "mx.test")
	return p
}

// newLeaf issues a server certificate for names from the intermediate.
func (p *pki) newLeaf(t testing.TB, notBefore, notAfter time.Time, names ...string) *x509.Certificate {
	t.Helper()
	leaf, _ := issue(t, &x509.Certificate{
		Subject:     pkix.Name{CommonName: names[0]},
		DNSNames:    names,
		NotBefore:   notBefore,
		NotAfter:    notAfter,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, p.inter, p.interKey)
	return leaf
}

// issue makes a certificate from tmpl signed by parent, or self-signed
// when parent is nil.
func issue(t testing.TB, tmpl, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl.SerialNumber = big.NewInt(serial.Add(1))
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

// state is what a TLS client sees of a server presenting chain.
func state(chain ...*x509.Certificate) tls.ConnectionState {
	return tls.ConnectionState{PeerCertificates: chain}
}
