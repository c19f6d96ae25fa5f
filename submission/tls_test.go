package submission

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// testPKI is a CA made for one test and a certificate for mx.test (and
// 127.0.0.1) that it signed, loaded with LoadTLSConfig.
type testPKI struct {
	server            *tls.Config // for Config.TLSConfig
	client            *tls.Config // trusts the CA, expects mx.test
	certFile, keyFile string
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	now := time.Now()
	caKey := newKey(t)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mtad test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	ca := createCert(t, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	key := newKey(t)
	leaf := createCert(t, &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "mx.test"},
		DNSNames: []string{"mx.test"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, ca, &key.PublicKey, caKey)
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p := &testPKI{certFile: filepath.Join(dir, "cert.pem"), keyFile: filepath.Join(dir, "key.pem")}
	writePEM(t, p.certFile, "CERTIFICATE", leaf.Raw)
	writePEM(t, p.keyFile, "PRIVATE KEY", keyDER)
	if p.server, err = LoadTLSConfig(p.certFile, p.keyFile); err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	p.client = &tls.Config{RootCAs: roots, ServerName: "mx.test"}
	return p
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func createCert(t *testing.T, tmpl, parent *x509.Certificate, pub *ecdsa.PublicKey, signer *ecdsa.PrivateKey) *x509.Certificate {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// tlsConfig is testConfig with TLS on.
func (p *testPKI) tlsConfig() Config {
	cfg := testConfig()
	cfg.TLSConfig = p.server
	return cfg
}

// serveTLS serves implicit TLS on a second loopback listener of h and
// returns its address. The harness's Shutdown ends it; Cleanup checks
// that ServeTLS then returned nil.
func (h *harness) serveTLS() string {
	h.t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		h.t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- h.srv.ServeTLS(l) }()
	h.t.Cleanup(func() {
		h.stop()
		select {
		case err := <-done:
			// ErrServerClosed: the test shut the server down before this
			// goroutine got to ServeTLS, which is then refused as documented.
			if err != nil && !errors.Is(err, smtp.ErrServerClosed) {
				h.t.Errorf("ServeTLS returned %v, want nil", err)
			}
		case <-time.After(waitFor):
			h.t.Error("ServeTLS did not return after Shutdown")
		}
	})
	return l.Addr().String()
}

// rawTLS dials addr with implicit TLS and reads the greeting; with ehlo it
// also says EHLO.
func (h *harness) rawTLS(addr string, cfg *tls.Config, ehlo bool) *rawClient {
	h.t.Helper()
	d := tls.Dialer{Config: cfg}
	ctx, cancel := context.WithTimeout(h.t.Context(), waitFor)
	defer cancel()
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { conn.Close() })
	c := &rawClient{t: h.t, conn: conn, r: bufio.NewReader(conn)}
	c.expect("", "220 mx.test ESMTP")
	if ehlo {
		c.expect("EHLO client.test", "250-")
	}
	return c
}

// startTLS sends STARTTLS and then extra, in one write, and runs the
// handshake: from then on c talks TLS.
func (c *rawClient) startTLS(cfg *tls.Config, extra string) {
	c.t.Helper()
	c.send("STARTTLS\r\n" + extra)
	if r := c.cmd(""); !strings.HasPrefix(r, "220 ") {
		c.t.Fatalf("STARTTLS: %q", r)
	}
	tc := tls.Client(c.conn, cfg)
	tc.SetDeadline(time.Now().Add(waitFor))
	if err := tc.Handshake(); err != nil {
		c.t.Fatalf("handshake: %v", err)
	}
	c.conn, c.r = tc, bufio.NewReader(tc)
}

// TestTLSExtensions: STARTTLS is offered in clear when TLS is configured,
// never over TLS; REQUIRETLS only over TLS.
func TestTLSExtensions(t *testing.T) {
	pki := newTestPKI(t)
	type exts struct{ starttls, requiretls bool }
	check := func(t *testing.T, ehlo string, want exts) {
		t.Helper()
		got := exts{strings.Contains(ehlo, "\n250-STARTTLS\n"), strings.Contains(ehlo, "\n250-REQUIRETLS\n")}
		if got != want {
			t.Errorf("EHLO %q: STARTTLS, REQUIRETLS = %v, want %v", ehlo, got, want)
		}
	}
	t.Run("no TLS config", func(t *testing.T) {
		h := start(t, testConfig())
		check(t, h.raw(false).cmd("EHLO client.test"), exts{})
	})
	t.Run("in clear", func(t *testing.T) {
		h := start(t, pki.tlsConfig())
		check(t, h.raw(false).cmd("EHLO client.test"), exts{starttls: true})
	})
	t.Run("after STARTTLS", func(t *testing.T) {
		h := start(t, pki.tlsConfig())
		c := h.raw(true)
		c.startTLS(pki.client, "")
		check(t, c.cmd("EHLO client.test"), exts{requiretls: true})
		c.expect("STARTTLS", "502 5.5.1 ")
	})
	t.Run("implicit TLS", func(t *testing.T) {
		h := start(t, pki.tlsConfig())
		c := h.rawTLS(h.serveTLS(), pki.client, false)
		check(t, c.cmd("EHLO client.test"), exts{requiretls: true})
		c.expect("STARTTLS", "502 5.5.1 ")
	})
}

// TestEHLOTranscriptTLS pins the EHLO replies of a server with TLS, in
// clear and after STARTTLS (testdata/ehlo-*.golden).
func TestEHLOTranscriptTLS(t *testing.T) {
	pki := newTestPKI(t)
	h := start(t, pki.tlsConfig())
	c := h.raw(false)
	clear := c.cmd("EHLO client.test") + "\n"
	c.startTLS(pki.client, "")
	overTLS := c.cmd("EHLO client.test") + "\n"
	for name, got := range map[string]string{"ehlo-starttls.golden": clear, "ehlo-tls.golden": overTLS} {
		golden := filepath.Join("testdata", name)
		if *update {
			if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(golden)
		if err != nil {
			t.Fatal(err)
		}
		if got != string(want) {
			t.Errorf("%s:\n%s\nwant:\n%s", name, got, want)
		}
	}
}

// TestSTARTTLSTransaction runs transactions after STARTTLS with go-smtp's
// client: the envelope has the EHLO given over TLS, RequireTLS as asked,
// and the Received header says ESMTPS.
func TestSTARTTLSTransaction(t *testing.T) {
	pki := newTestPKI(t)
	h := start(t, pki.tlsConfig())
	conn, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	c, err := smtp.NewClientStartTLS(conn, pki.client) // EHLO localhost, STARTTLS
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("client.test"); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.TLSConnectionState(); !ok {
		t.Fatal("client not on TLS")
	}
	for _, requireTLS := range []bool{true, false} {
		send(t, c, &smtp.MailOptions{RequireTLS: requireTLS}, "Subject: over TLS\r\n\r\nx\r\n")
	}
	msgs := checkAccepted(t, h, 2)
	for i, want := range []bool{true, false} {
		env := msgs[i].env
		if env.RequireTLS != want || env.Helo != "client.test" || env.Source != "trusted" {
			t.Errorf("message %d: RequireTLS %v (want %v), Helo %q, Source %q", i, env.RequireTLS, want, env.Helo, env.Source)
		}
		checkProto(t, msgs[i], "ESMTPS")
	}
}

// send runs one transaction from a@sender.example to b@local.test.
func send(t *testing.T, c *smtp.Client, opts *smtp.MailOptions, body string) {
	t.Helper()
	if err := c.Mail("a@sender.example", opts); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("b@local.test", nil); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, body)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func checkProto(t *testing.T, msg acceptedMsg, want string) {
	t.Helper()
	m := receivedRE.FindSubmatch(msg.body)
	if m == nil {
		t.Fatalf("no Received header in %q", msg.body)
	}
	if string(m[3]) != want {
		t.Errorf("Received %q: with %s, want %s", m[0], m[3], want)
	}
}

// TestSTARTTLSResets: STARTTLS drops everything from before it (RFC 3207
// 4.2): a command pipelined after STARTTLS in clear, the EHLO name, the
// open transaction.
func TestSTARTTLSResets(t *testing.T) {
	pki := newTestPKI(t)
	h := start(t, pki.tlsConfig())
	c := h.raw(false)
	c.expect("EHLO before.test", "250-")
	c.expect("MAIL FROM:<early@sender.example>", "250 ")
	c.startTLS(pki.client, "RCPT TO:<injected@local.test>\r\n")
	// Were the injected RCPT read over TLS, its reply would come first.
	c.expect("NOOP", "250 2.0.0 ")
	c.expect("MAIL FROM:<a@sender.example>", "502 5.5.1 ") // EHLO first
	c.expect("EHLO client.test", "250-")
	c.expect("RCPT TO:<b@local.test>", "502 5.5.1 ") // no MAIL any more
	if r := c.transaction("a@sender.example", []string{"b@local.test"}, "Subject: x\r\n\r\nx\r\n"); !strings.HasPrefix(r, "250 ") {
		t.Fatalf("DATA: %q", r)
	}
	msg := checkAccepted(t, h, 1)[0]
	if msg.env.From != "a@sender.example" || msg.env.Helo != "client.test" || len(msg.env.Rcpts) != 1 {
		t.Errorf("envelope %+v", msg.env)
	}
	checkProto(t, msg, "ESMTPS")
}

// TestImplicitTLS: a client of ServeTLS talks TLS from the first byte.
func TestImplicitTLS(t *testing.T) {
	pki := newTestPKI(t)
	h := start(t, pki.tlsConfig())
	addr := h.serveTLS()
	c, err := smtp.DialTLS(addr, pki.client)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("client.test"); err != nil {
		t.Fatal(err)
	}
	send(t, c, &smtp.MailOptions{RequireTLS: true, UTF8: true}, "Subject: implicit\r\n\r\nx\r\n")
	msg := checkAccepted(t, h, 1)[0]
	if !msg.env.RequireTLS || !msg.env.SMTPUTF8 || msg.env.ReceivedFromIP != "127.0.0.1" {
		t.Errorf("envelope %+v", msg.env)
	}
	checkProto(t, msg, "UTF8SMTPS")
	if err := c.Quit(); err != nil {
		t.Errorf("QUIT: %v", err)
	}
}

// TestRequireTLSInClear: REQUIRETLS on MAIL without TLS is refused, the
// way it is with TLS configured (ours) and without (go-smtp's); the
// session goes on.
func TestRequireTLSInClear(t *testing.T) {
	pki := newTestPKI(t)
	tests := []struct {
		name  string
		cfg   Config
		reply string
	}{
		{"TLS configured", pki.tlsConfig(), "530 5.7.10 REQUIRETLS needs a TLS session"},
		{"no TLS", testConfig(), "504 5.5.4 REQUIRETLS is not implemented"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := start(t, tt.cfg)
			c := h.raw(true)
			if r := c.cmd("MAIL FROM:<a@sender.example> REQUIRETLS"); r != tt.reply {
				t.Errorf("MAIL REQUIRETLS: %q, want %q", r, tt.reply)
			}
			if r := c.transaction("a@sender.example", []string{"b@local.test"}, "x\r\n"); !strings.HasPrefix(r, "250 ") {
				t.Fatalf("DATA: %q", r)
			}
			msg := checkAccepted(t, h, 1)[0]
			if msg.env.RequireTLS {
				t.Error("RequireTLS set")
			}
			checkProto(t, msg, "ESMTP")
		})
	}
}

// TestShutdownTLS: Shutdown reaches TLS sessions as it reaches others:
// idle ones hear 421 over TLS, a transaction is let finish, and a
// connection still in its handshake is closed without holding Shutdown.
func TestShutdownTLS(t *testing.T) {
	pki := newTestPKI(t)
	cfg := pki.tlsConfig()
	cfg.ReadTimeout = 3 * waitFor // a stuck handshake would outlast Shutdown's context
	h := start(t, cfg)
	addr := h.serveTLS()

	implicitIdle := h.rawTLS(addr, pki.client, true)
	starttlsIdle := h.raw(true)
	starttlsIdle.expect("MAIL FROM:<a@sender.example>", "250 ") // STARTTLS ends it
	starttlsIdle.startTLS(pki.client, "")
	starttlsIdle.expect("EHLO client.test", "250-")
	handshaking, err := net.Dial("tcp", addr) // says nothing
	if err != nil {
		t.Fatal(err)
	}
	defer handshaking.Close()
	busy := h.rawTLS(addr, pki.client, true)
	busy.expect("MAIL FROM:<a@sender.example>", "250 ")
	busy.expect("RCPT TO:<b@local.test>", "250 ")
	waitConns(t, h.srv, 4)

	ctx, cancel := context.WithTimeout(t.Context(), waitFor)
	defer cancel()
	done := shutdownAsync(h.srv, ctx)
	for name, c := range map[string]*rawClient{"implicit TLS": implicitIdle, "after STARTTLS": starttlsIdle} {
		if got := c.closed(); len(got) < 1 || got[0] != bye {
			t.Errorf("%s: read %q, want %q then close", name, got, bye)
		}
	}
	handshaking.SetReadDeadline(time.Now().Add(waitFor))
	if n, err := handshaking.Read(make([]byte, 1)); n != 0 || err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("connection in handshake: read %d bytes, %v; want closed without a byte", n, err)
	}
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned %v with a transaction open", err)
	default:
	}
	if r := busy.transaction2(); !strings.HasPrefix(r, "250 ") {
		t.Fatalf("DATA during shutdown: %q", r)
	}
	if got := busy.closed(); len(got) < 1 || got[0] != bye {
		t.Errorf("after the transaction: read %q, want %q then close", got, bye)
	}
	if err := waitErr(t, done); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	checkAccepted(t, h, 1)
}

// transaction2 ends a transaction whose MAIL and RCPT were accepted.
func (c *rawClient) transaction2() string {
	c.t.Helper()
	c.expect("DATA", "354 ")
	c.send("Subject: late\r\n\r\nx\r\n.\r\n")
	return c.cmd("")
}

// waitConns polls until srv tracks n connections.
func waitConns(t *testing.T, srv *Server, n int) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for len(srv.connList()) != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections tracked, want %d", len(srv.connList()), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestImplicitTLSTooManyConns: a connection over MaxConnections on an
// implicit TLS listener is closed without a 421 in clear.
func TestImplicitTLSTooManyConns(t *testing.T) {
	pki := newTestPKI(t)
	cfg := pki.tlsConfig()
	cfg.MaxConnections = 1
	h := start(t, cfg)
	addr := h.serveTLS()
	h.rawTLS(addr, pki.client, true)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(waitFor))
	if b, err := io.ReadAll(conn); len(b) != 0 || err != nil {
		t.Errorf("second connection read %q, %v; want a close and nothing else", b, err)
	}
}

func TestServeTLSConfigErrors(t *testing.T) {
	tests := []struct {
		name  string
		tls   *tls.Config
		serve func(*Server, net.Listener) error
		want  error
	}{
		{"ServeTLS without TLSConfig", nil, (*Server).ServeTLS, errNoTLSConfig},
		{"Serve with a TLSConfig without certificate", &tls.Config{}, (*Server).Serve, errNoCert},
		{"ServeTLS with a TLSConfig without certificate", &tls.Config{}, (*Server).ServeTLS, errNoCert},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.TLSConfig = tt.tls
			srv := New(cfg, &fakeAcceptor{}, nil)
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			if err := tt.serve(srv, l); !errors.Is(err, tt.want) {
				t.Errorf("got %v, want %v", err, tt.want)
			}
			if c, err := net.Dial("tcp", l.Addr().String()); err == nil {
				c.Close()
				t.Error("listener still open")
			}
		})
	}
}

func TestLoadTLSConfig(t *testing.T) {
	pki := newTestPKI(t)
	if got := pki.server; got.MinVersion != tls.VersionTLS12 || len(got.Certificates) != 1 {
		t.Errorf("MinVersion %#x, %d certificates", got.MinVersion, len(got.Certificates))
	}
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.pem")
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not PEM\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	other := newTestPKI(t) // a key that does not match pki's certificate
	tests := []struct {
		name, cert, key string
		names           []string // the error must name these
	}{
		{"missing certificate", missing, pki.keyFile, []string{missing}},
		{"missing key", pki.certFile, missing, []string{missing}},
		{"certificate not PEM", garbage, pki.keyFile, []string{garbage}},
		{"key not PEM", pki.certFile, garbage, []string{garbage}},
		{"key of another certificate", pki.certFile, other.keyFile, []string{pki.certFile, other.keyFile}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := LoadTLSConfig(tt.cert, tt.key)
			if err == nil {
				t.Fatalf("no error, config %v", c)
			}
			for _, n := range tt.names {
				if !strings.Contains(err.Error(), n) {
					t.Errorf("error %q does not name %s", err, n)
				}
			}
		})
	}
}
