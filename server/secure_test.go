package server

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/miekg/dns"

	"github.com/mtad/mtad/internal/testdns"
	"github.com/mtad/mtad/internal/testpki"
	"github.com/mtad/mtad/internal/testsink"
)

// secureLab is a loopback network for secure delivery: on one port,
// 127.0.0.2 offers STARTTLS with a certificate for mx1.tls.test signed by
// the test CA, 127.0.0.3 speaks plaintext only, 127.0.0.4 offers STARTTLS
// with a certificate for the wrong name; 127.0.0.5 serves MTA-STS policies.
type secureLab struct {
	ca                  *testpki.CA
	tlsSink, plain, bad *testsink.Sink
	port                string
	dns                 *testdns.Server
	stsPort             string
	node                *Server
	dir                 string
	policies            map[string]string // mta-sts host -> policy body ("" = 404)
}

const labZone = `
tls.test.          IN MX 10 mx1.tls.test.
mx1.tls.test.      IN A 127.0.0.2
plain.test.        IN MX 10 mx.plain.test.
mx.plain.test.     IN A 127.0.0.3
badcert.test.      IN MX 10 mx.badcert.test.
mx.badcert.test.   IN A 127.0.0.4
strict.test.       IN MX 10 mx.plain.test.
dane.test.         IN MX 10 mx1.dane.test.
mx1.dane.test.     IN A 127.0.0.2
danebad.test.      IN MX 10 mx1.danebad.test.
mx1.danebad.test.  IN A 127.0.0.2
nodane.test.       IN MX 10 mx1.nodane.test.
mx1.nodane.test.   IN A 127.0.0.2
daneerr.test.      IN MX 10 mx1.daneerr.test.
mx1.daneerr.test.  IN A 127.0.0.2
sts.test.          IN MX 10 mx1.tls.test.
_mta-sts.sts.test. IN TXT "v=STSv1; id=1;"
mta-sts.sts.test.  IN A 127.0.0.5
stsbad.test.       IN MX 10 mx1.tls.test.
_mta-sts.stsbad.test. IN TXT "v=STSv1; id=1;"
mta-sts.stsbad.test.  IN A 127.0.0.5
ststest.test.      IN MX 10 mx1.tls.test.
_mta-sts.ststest.test. IN TXT "v=STSv1; id=1;"
mta-sts.ststest.test.  IN A 127.0.0.5
stsgone.test.      IN MX 10 mx1.tls.test.
_mta-sts.stsgone.test. IN TXT "v=STSv1; id=1;"
mta-sts.stsgone.test.  IN A 127.0.0.5
_smtp._tls.tls.test. IN TXT "v=TLSRPTv1; rua=mailto:reports@plain.test"
sender.test.       IN MX 10 mx.plain.test.
`

func newSecureLab(t *testing.T, extra string) *secureLab {
	t.Helper()
	l := &secureLab{ca: testpki.NewCA(t), policies: map[string]string{
		"mta-sts.sts.test":     "version: STSv1\r\nmode: enforce\r\nmx: mx1.tls.test\r\nmax_age: 86400\r\n",
		"mta-sts.stsbad.test":  "version: STSv1\r\nmode: enforce\r\nmx: mx.other.test\r\nmax_age: 86400\r\n",
		"mta-sts.ststest.test": "version: STSv1\r\nmode: testing\r\nmx: mx.other.test\r\nmax_age: 86400\r\n",
	}}
	mx1 := l.ca.Issue("mx1.tls.test")
	l.tlsSink = testsink.StartTLSOn(t, "127.0.0.2:0", &tls.Config{Certificates: []tls.Certificate{mx1}})
	_, l.port = hostPort(l.tlsSink.Addr)
	l.plain = testsink.StartOn(t, "127.0.0.3:"+l.port)
	l.bad = testsink.StartTLSOn(t, "127.0.0.4:"+l.port, l.ca.ServerConfig("wrong.test"))
	spki := sha256.Sum256(mx1.Leaf.RawSubjectPublicKeyInfo)
	zone := labZone + fmt.Sprintf(`
_%s._tcp.mx1.dane.test.    IN TLSA 3 1 1 %s
_%s._tcp.mx1.danebad.test. IN TLSA 3 1 1 %s
`, l.port, hex.EncodeToString(spki[:]), l.port, strings.Repeat("ab", 32))
	l.dns = testdns.Start(t, zone)
	for _, z := range []string{"dane.test.", "danebad.test.", "nodane.test.", "daneerr.test."} {
		l.dns.SetAuthenticated(z)
	}
	l.dns.SetRcode(fmt.Sprintf("_%s._tcp.mx1.daneerr.test.", l.port), dns.TypeTLSA, dns.RcodeServerFailure)
	l.startSTS(t)
	l.node, l.dir = startNode(t, fmt.Sprintf(`
[resolver]
nameservers = [%q]
timeout = "1s"
[tls]
ca-file = %q
mta-sts-port = %s
mta-sts-timeout = "2s"
[queue.schedule.default]
retry = ["1s"]
[queue.route.mx]
type = "mx"
port = %s
[queue.connection.default]
timeout = { connect = "2s", greeting = "5s" }
`, l.dns.Addr, l.ca.File, l.stsPort, l.port)+extra)
	return l
}

// startSTS serves MTA-STS policies over HTTPS on 127.0.0.5.
func (l *secureLab) startSTS(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.5:0")
	if err != nil {
		t.Fatal(err)
	}
	_, l.stsPort = hostPort(ln.Addr().String())
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, ok := l.policies[strings.Split(r.Host, ":")[0]]
		if !ok || r.URL.Path != "/.well-known/mta-sts.txt" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, body)
	}), TLSConfig: l.ca.ServerConfig("mta-sts.sts.test", "mta-sts.stsbad.test", "mta-sts.ststest.test", "mta-sts.stsgone.test")}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() { srv.Close() })
}

func (l *secureLab) send(t *testing.T, rcpt string) {
	t.Helper()
	if err := send(t, l.node.Addrs()[0].String(), "s@sender.test", []string{rcpt}, message(rcpt)); err != nil {
		t.Fatal(err)
	}
}

func (l *secureLab) outcome(t *testing.T, rcpt string) (kind string, code int, enhanced, reply string) {
	t.Helper()
	waitFor(t, rcpt+"'s outcome", 15*time.Second, func() bool {
		evs := events(t, l.dir)
		return eventFor(evs, "delivered", rcpt) != nil || eventFor(evs, "failed", rcpt) != nil || eventFor(evs, "deferred", rcpt) != nil
	})
	evs := events(t, l.dir)
	for _, k := range []string{"delivered", "failed", "deferred"} {
		if e := eventFor(evs, k, rcpt); e != nil {
			return k, e.Code, e.Enhanced, e.Reply
		}
	}
	return "", 0, "", ""
}

func txTo(s *testsink.Sink, rcpt string) *testsink.Tx {
	for _, tx := range s.Txs() {
		if contains(tx.Rcpts, rcpt) {
			return &tx
		}
	}
	return nil
}

func TestSecureDelivery(t *testing.T) {
	l := newSecureLab(t, `
[queue.tls.strict]
starttls = "require"
[queue.tls.danereq]
dane = "require"
[queue.tls.stsreq]
mta-sts = "require"
[queue.tls.relaxed]
allow-invalid-certs = true
[queue.strategy]
tls = [ { if = "rcpt_domain == 'strict.test'", then = "'strict'" },
        { if = "rcpt_domain == 'nodane.test'", then = "'danereq'" },
        { if = "rcpt_domain == 'stsgone.test'", then = "'stsreq'" },
        { if = "rcpt_domain == 'badcert.test' && last_error == 'tls'", then = "'relaxed'" },
        { else = "'default'" } ]
`)
	cases := []struct {
		name, rcpt string
		kind       string // delivered / failed / deferred
		enhanced   string
		sink       *testsink.Sink
		tls        bool
	}{
		{"optional STARTTLS used when offered", "a@tls.test", "delivered", "", l.tlsSink, true},
		{"plaintext when not offered", "b@plain.test", "delivered", "", l.plain, false},
		{"require and not offered bounces", "c@strict.test", "failed", "5.7.10", nil, false},
		{"DANE-EE match (the name does not matter)", "d@dane.test", "delivered", "", l.tlsSink, true},
		{"DANE-EE mismatch", "e@danebad.test", "failed", "5.7.5", nil, false},
		{"dane = require and no TLSA", "f@nodane.test", "failed", "5.7.5", nil, false},
		{"TLSA SERVFAIL is temporary", "g@daneerr.test", "deferred", "4.7.5", nil, false},
		{"MTA-STS enforce, MX listed", "h@sts.test", "delivered", "", l.tlsSink, true},
		{"MTA-STS enforce, MX not listed", "i@stsbad.test", "failed", "5.7.0", nil, false},
		{"MTA-STS testing, MX not listed", "j@ststest.test", "delivered", "", l.tlsSink, true},
		{"MTA-STS required, policy fetch 404", "k@stsgone.test", "failed", "5.7.0", nil, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l.send(t, c.rcpt)
			kind, _, enhanced, reply := l.outcome(t, c.rcpt)
			if kind != c.kind || (c.enhanced != "" && enhanced != c.enhanced) {
				t.Fatalf("%s: %s %s (%s), want %s %s", c.rcpt, kind, enhanced, reply, c.kind, c.enhanced)
			}
			if c.sink == nil {
				return
			}
			tx := txTo(c.sink, c.rcpt)
			if tx == nil || tx.TLS != c.tls {
				t.Errorf("%s: transaction %+v, want TLS=%v", c.rcpt, tx, c.tls)
			}
		})
	}
	t.Run("untrusted certificate is temporary, a relaxed retry delivers", func(t *testing.T) {
		l.send(t, "m@badcert.test")
		waitFor(t, "delivery on retry", 15*time.Second, func() bool { return eventFor(events(t, l.dir), "delivered", "m@badcert.test") != nil })
		d := eventFor(events(t, l.dir), "deferred", "m@badcert.test")
		if d == nil || !strings.Contains(d.Reply, "certificate") {
			t.Errorf("first attempt: %+v, want a deferral for the certificate", d)
		}
		if tx := txTo(l.bad, "m@badcert.test"); tx == nil || !tx.TLS {
			t.Errorf("relaxed retry not over TLS: %+v", tx)
		}
	})
}

// The daily TLS report: its JSON content, and its delivery to the rua of
// _smtp._tls.<domain>.
func TestTLSReport(t *testing.T) {
	l := newSecureLab(t, "[report.tls]\nenable = true\nfrom = \"tlsrpt@mtad.test\"\n")
	for _, r := range []string{"a@tls.test", "b@tls.test"} {
		l.send(t, r)
		if kind, _, _, reply := l.outcome(t, r); kind != "delivered" {
			t.Fatalf("%s: %s %s", r, kind, reply)
		}
	}
	l.node.reports.send(context.Background(), time.Now().Add(48*time.Hour))
	var report *testsink.Tx
	waitFor(t, "the report at the rua", 15*time.Second, func() bool { report = txTo(l.plain, "reports@plain.test"); return report != nil })
	if report.From != "tlsrpt@mtad.test" {
		t.Errorf("report from %q", report.From)
	}
	m, err := mail.ReadMessage(bytes.NewReader(report.Data))
	if err != nil {
		t.Fatal(err)
	}
	if m.Header.Get("TLS-Report-Domain") != "tls.test" {
		t.Errorf("TLS-Report-Domain %q", m.Header.Get("TLS-Report-Domain"))
	}
	_, params, _ := mime.ParseMediaType(m.Header.Get("Content-Type"))
	mr := multipart.NewReader(m.Body, params["boundary"])
	var doc map[string]any
	for {
		p, err := mr.NextPart()
		if err != nil {
			break
		}
		if p.Header.Get("Content-Type") != "application/tlsrpt+gzip" {
			continue
		}
		raw, _ := io.ReadAll(p)
		gz, err := gzip.NewReader(base64Reader(raw))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.NewDecoder(gz).Decode(&doc); err != nil {
			t.Fatal(err)
		}
	}
	pols, _ := doc["policies"].([]any)
	if len(pols) != 1 {
		t.Fatalf("report %v: want one policy", doc)
	}
	sum := pols[0].(map[string]any)["summary"].(map[string]any)
	// Both messages may share one session: sessions are what is counted.
	if sum["total-successful-session-count"].(float64) < 1 || sum["total-failure-session-count"].(float64) != 0 {
		t.Errorf("summary %v: want successful sessions and no failure", sum)
	}
	pol := pols[0].(map[string]any)["policy"].(map[string]any)
	if pol["policy-type"] != "no-policy-found" || pol["policy-domain"] != "tls.test" {
		t.Errorf("policy %v", pol)
	}
}

// REQUIRETLS: a message submitted with it goes only over verified TLS to a
// hop that advertises REQUIRETLS, and bounces 5.7.30 otherwise.
func TestRequireTLS(t *testing.T) {
	ca := testpki.NewCA(t)
	dir := t.TempDir()
	cert := ca.Issue("mtad.test")
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writePEM(t, certFile, keyFile, cert)
	l := newSecureLab(t, fmt.Sprintf("[server.tls]\ncertificate = %q\nprivate-key = %q\n", certFile, keyFile))
	for _, c := range []struct{ rcpt, kind, enhanced string }{
		{"rt@tls.test", "delivered", ""},
		{"rt@plain.test", "failed", "5.7.30"},
	} {
		sendRequireTLS(t, l.node.Addrs()[0].String(), ca, c.rcpt)
		kind, _, enhanced, reply := l.outcome(t, c.rcpt)
		if kind != c.kind || (c.enhanced != "" && enhanced != c.enhanced) {
			t.Errorf("%s: %s %s (%s), want %s %s", c.rcpt, kind, enhanced, reply, c.kind, c.enhanced)
		}
	}
	if tx := txTo(l.tlsSink, "rt@tls.test"); tx == nil || !tx.TLS || !tx.RequireTLS {
		t.Errorf("REQUIRETLS message: %+v, want TLS with REQUIRETLS on MAIL", tx)
	}
}

// sendRequireTLS submits over STARTTLS with MAIL FROM ... REQUIRETLS.
func sendRequireTLS(t *testing.T, addr string, ca *testpki.CA, rcpt string) {
	t.Helper()
	c, err := smtp.DialStartTLS(addr, &tls.Config{RootCAs: ca.Pool, ServerName: "mtad.test"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Mail("s@sender.test", &smtp.MailOptions{RequireTLS: true}); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt(rcpt, nil); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, message("rt"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func writePEM(t *testing.T, certFile, keyFile string, cert tls.Certificate) {
	t.Helper()
	var certs []byte
	for _, der := range cert.Certificate {
		certs = append(certs, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	key, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, certs, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// base64Reader decodes a base64 MIME body (line breaks allowed).
func base64Reader(raw []byte) io.Reader {
	return base64.NewDecoder(base64.StdEncoding, bytes.NewReader(bytes.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return -1
		}
		return r
	}, raw)))
}
