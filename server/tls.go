package server

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/mtad/mtad/messages"
	"github.com/mtad/mtad/mtasts"
	"github.com/mtad/mtad/resolver"
	"github.com/mtad/mtad/tlsrpt"
)

// rootCAs is the system's pool plus tls.ca-file.
func rootCAs(file string) (*x509.CertPool, error) {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if file == "" {
		return pool, nil
	}
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("tls.ca-file: %w", err)
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("tls.ca-file: %s holds no PEM certificate", file)
	}
	return pool, nil
}

// txtLookup and ipLookup adapt the resolver to mtasts and tlsrpt.
type txtLookup struct{ r *resolver.Resolver }

func (t txtLookup) LookupTXT(ctx context.Context, name string) ([]string, error) {
	res, err := t.r.LookupTXT(ctx, name)
	return res.Records, err
}

type ipLookup struct{ r *resolver.Resolver }

func (i ipLookup) LookupIP(ctx context.Context, host string) ([]netip.Addr, error) {
	return i.r.LookupIP(ctx, host, resolver.IPv4ThenIPv6)
}

func newSTSFetcher(s *Server, res *resolver.Resolver, roots *x509.CertPool) *mtasts.Fetcher {
	return &mtasts.Fetcher{TXT: txtLookup{res}, IP: ipLookup{res}, RootCAs: roots,
		Timeout: s.cfg.TLS.MTASTSTimeout, Port: s.cfg.TLS.MTASTSPort}
}

// tlsReports keeps the RFC 8460 outcomes in a file under the data
// directory and mails the previous days' reports once a day.
type tlsReports struct {
	s      *Server
	rec    *tlsrpt.Recorder
	sender *tlsrpt.Sender
	path   string
	ctx    context.Context // cancelled by close: a send in progress ends
	cancel context.CancelFunc
	done   sync.WaitGroup
}

func startTLSReports(s *Server, res *resolver.Resolver) (*tlsReports, error) {
	cfg := s.cfg.Report.TLS
	t := &tlsReports{s: s, rec: tlsrpt.NewRecorder(), path: filepath.Join(s.cfg.Server.DataDir, "tlsrpt.json")}
	t.ctx, t.cancel = context.WithCancel(context.Background())
	if err := t.rec.LoadFile(t.path); err != nil {
		return nil, fmt.Errorf("tls reports: %w", err)
	}
	from, org := cfg.From, cfg.Organization
	if org == "" {
		org = s.cfg.Server.Hostname
	}
	if from == "" {
		from = "postmaster@" + s.cfg.Server.Hostname
	}
	t.sender = &tlsrpt.Sender{TXT: txtLookup{res}, Submit: s.submitReport, From: from, Org: org, HTTP: publicOnlyClient()}
	t.done.Add(1)
	go t.run()
	return t, nil
}

// run saves the counts every minute and sends reports at the configured
// time of day. It is the only goroutine that calls Take.
func (t *tlsReports) run() {
	defer t.done.Done()
	tick := time.NewTicker(time.Minute)
	defer tick.Stop()
	for {
		select {
		case <-t.ctx.Done():
			return
		case now := <-tick.C:
			t.save()
			day := now.UTC().Truncate(24 * time.Hour)
			if now.UTC().Sub(day) >= t.s.cfg.Report.TLS.SendAt {
				t.send(t.ctx, day)
			}
		}
	}
}

// send mails the reports of every day before upTo.
func (t *tlsReports) send(ctx context.Context, upTo time.Time) {
	for _, day := range t.rec.Days() {
		if !day.Before(upTo) {
			continue
		}
		reports := t.rec.Take(day)
		ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
		if err := t.sender.Send(ctx, reports); err != nil {
			t.s.log.Warn("tls reports not all sent", "day", day.Format(time.DateOnly), "err", err)
		}
		cancel()
		t.save()
	}
}

func (t *tlsReports) save() {
	if err := t.rec.SaveFile(t.path); err != nil {
		t.s.log.Error("saving tls report counts", "err", err)
	}
}

func (t *tlsReports) close() {
	t.cancel()
	t.done.Wait()
	t.save()
}

// submitReport journals and queues a report message from the reporter.
func (s *Server) submitReport(from string, rcpts []string, msg []byte) error {
	env := &messages.Envelope{ID: s.journal.NextID(), From: from, Size: int64(len(msg)), Arrival: time.Now(),
		Source: "report", Body: messages.Body7Bit}
	for i, r := range rcpts {
		env.Rcpts = append(env.Rcpts, messages.Recipient{Index: uint32(i), Addr: r, Notify: messages.NotifyNever})
	}
	s.engine.Place(env)
	if err := s.journal.Accept(env, msg); err != nil {
		return err
	}
	s.engine.Enqueue(env)
	return nil
}

// publicOnlyClient posts reports to https rua URIs, which come from other
// people's DNS: it refuses to connect to loopback, private, link-local or
// unspecified addresses, so a record cannot aim it at our own network.
func publicOnlyClient() *http.Client {
	d := &net.Dialer{Timeout: 30 * time.Second, Control: func(_, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return err
		}
		ip := ap.Addr().Unmap()
		if ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsUnspecified() || ip.IsMulticast() {
			return errors.New("tls report: refusing a non-public address " + ip.String())
		}
		return nil
	}}
	return &http.Client{Timeout: time.Minute, Transport: &http.Transport{DialContext: d.DialContext, Proxy: nil},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}
