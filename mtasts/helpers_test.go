package mtasts

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/mtad/mtad/resolver"
)

// testCA is a certificate authority made for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newCA(t *testing.T) *testCA {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "mtasts test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// leaf issues a server certificate for names.
func (ca *testCA) leaf(t *testing.T, names ...string) tls.Certificate {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: names[0]},
		DNSNames:     names,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// policyServer is an HTTPS server on 127.0.0.1 that records what it was
// asked.
type policyServer struct {
	port int

	mu    sync.Mutex
	hits  map[string]int // by path
	hosts []string       // Host headers
	snis  []string       // TLS server names
}

func newServer(t *testing.T, cert tls.Certificate, h http.HandlerFunc) *policyServer {
	t.Helper()
	s := &policyServer{hits: make(map[string]int)}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.hits[r.URL.Path]++
		s.hosts = append(s.hosts, r.Host)
		s.snis = append(s.snis, r.TLS.ServerName)
		s.mu.Unlock()
		h(w, r)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // handshake failures are expected
	srv.StartTLS()
	t.Cleanup(srv.Close)
	s.port = srv.Listener.Addr().(*net.TCPAddr).Port
	return s
}

const policyPath = "/.well-known/mta-sts.txt"

// requests returns how many times the policy was asked for.
func (s *policyServer) requests() int { return s.count(policyPath) }

func (s *policyServer) count(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits[path]
}

// serve answers with body as text/plain.
func serve(body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, body)
	}
}

// fakeDNS answers TXT and address lookups from maps; a name not in them
// does not exist.
type fakeDNS struct {
	mu      sync.Mutex
	txt     map[string][]string
	txtErr  map[string]error
	ip      map[string][]netip.Addr
	ipErr   map[string]error
	txtSeen int
}

var (
	_ TXTLookuper = (*fakeDNS)(nil)
	_ IPLookuper  = (*fakeDNS)(nil)
)

var loopback = netip.MustParseAddr("127.0.0.1")

// newDNS returns a fakeDNS where each domain publishes the TXT record
// "v=STSv1; id=<id>" and mta-sts.<domain> is 127.0.0.1.
func newDNS(domainIDs ...string) *fakeDNS {
	d := &fakeDNS{
		txt: make(map[string][]string), txtErr: make(map[string]error),
		ip: make(map[string][]netip.Addr), ipErr: make(map[string]error),
	}
	for i := 0; i+1 < len(domainIDs); i += 2 {
		d.setID(domainIDs[i], domainIDs[i+1])
		d.ip["mta-sts."+domainIDs[i]] = []netip.Addr{loopback}
	}
	return d
}

func (d *fakeDNS) setID(domain, id string) { d.setTXT(domain, "v=STSv1; id="+id+";") }

func (d *fakeDNS) setTXT(domain string, records ...string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.txt["_mta-sts."+domain] = records
	delete(d.txtErr, "_mta-sts."+domain)
}

func (d *fakeDNS) removeTXT(domain string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.txt, "_mta-sts."+domain)
	delete(d.txtErr, "_mta-sts."+domain)
}

func (d *fakeDNS) failTXT(domain string, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.txtErr["_mta-sts."+domain] = err
}

func (d *fakeDNS) LookupTXT(ctx context.Context, name string) ([]string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.txtSeen++
	if err := d.txtErr[name]; err != nil {
		return nil, err
	}
	records, ok := d.txt[name]
	if !ok {
		return nil, nxdomain(name)
	}
	return records, nil
}

func (d *fakeDNS) LookupIP(ctx context.Context, host string) ([]netip.Addr, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.ipErr[host]; err != nil {
		return nil, err
	}
	addrs, ok := d.ip[host]
	if !ok {
		return nil, nxdomain(host)
	}
	return addrs, nil
}

func nxdomain(name string) error {
	return &resolver.Error{Code: 550, Enhanced: "5.1.2", Name: name, Err: resolver.ErrNoSuchDomain}
}

func servfail(name string) error {
	return &resolver.Error{Temporary: true, Code: 451, Enhanced: "4.4.3", Name: name, Err: resolver.ErrServerFailure}
}

// clock is a settable time source.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// closedPort returns a loopback port nothing listens on.
func closedPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}
