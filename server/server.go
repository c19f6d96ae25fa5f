// Package server assembles one mtad node from its configuration: the
// journal, the resolver, the delivery log, the actor engine (recovered from
// the journal) and the submission listeners. cmd/mtad and the end-to-end
// tests build the same graph through it.
package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mtad/mtad/actors"
	"github.com/mtad/mtad/config"
	"github.com/mtad/mtad/deliverylog"
	"github.com/mtad/mtad/limits"
	"github.com/mtad/mtad/messages"
	"github.com/mtad/mtad/metrics"
	"github.com/mtad/mtad/persistence"
	"github.com/mtad/mtad/quota"
	"github.com/mtad/mtad/resolver"
	"github.com/mtad/mtad/submission"
	"github.com/mtad/mtad/webhook"
)

// Server is a running node.
type Server struct {
	cfg          *config.Config
	log          *slog.Logger
	journal      *persistence.Journal
	engine       *actors.Engine
	delivery     *deliverylog.Log
	logFile      io.Closer
	smtp         *submission.Server
	reports      *tlsReports          // nil unless report.tls.enable
	hooks        *webhook.Dispatcher  // nil without webhook endpoints
	journalStats prometheus.Collector // the journal's write statistics, while registered
	quotas       *quota.Book          // nil without queue quotas
	shaping      *limits.Memory
	mgmt         *http.Server // nil unless server.management.bind
	mgmtAddr     net.Addr
	listeners    []net.Listener
	implicit     map[net.Listener]bool // listeners speaking TLS from the first byte
	serving      sync.WaitGroup

	live     atomic.Pointer[config.Config] // the configuration in force (cfg until a reload)
	reloadMu sync.Mutex
	loader   func() (*config.Config, error) // reads the configuration again; nil: no reload
}

// config returns the configuration in force.
func (s *Server) config() *config.Config { return s.live.Load() }

// Start opens the journal, recovers queued mail and starts listening. On
// error, everything it opened is closed again.
func Start(cfg *config.Config, log *slog.Logger) (*Server, error) {
	s := &Server{cfg: cfg, log: log}
	s.live.Store(cfg)
	if err := s.start(); err != nil {
		_ = s.close()
		return nil, err
	}
	return s, nil
}

func (s *Server) start() (err error) {
	cfg, log := s.cfg, s.log
	if err := os.MkdirAll(cfg.Server.DataDir, 0o750); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	if s.journal, err = persistence.Open(filepath.Join(cfg.Server.DataDir, "journal"), persistence.Options{Logger: log}); err != nil {
		return err
	}
	res, err := resolver.New(resolver.Config{Nameservers: cfg.Resolver.Nameservers, Timeout: cfg.Resolver.Timeout, Attempts: cfg.Resolver.Attempts})
	if err != nil {
		return fmt.Errorf("resolver: %w", err)
	}
	if err := s.openDeliveryLog(); err != nil {
		return err
	}
	roots, err := rootCAs(cfg.TLS.CAFile)
	if err != nil {
		return err
	}
	if s.quotas, err = newQuotaBook(cfg); err != nil {
		return fmt.Errorf("queue.quota: %w", err)
	}
	deps := actors.Deps{Config: cfg, Journal: s.journal, Resolver: res, Delivery: s.delivery, Logger: log,
		RootCAs: roots, MTASTS: newSTSFetcher(s, res, roots), Quotas: s.quotas}
	s.shaping = limits.NewMemory() // outbound limits, response-driven shaping, admission limits
	deps.Limits = s.shaping
	if cfg.Report.TLS.Enable {
		if s.reports, err = startTLSReports(s, res); err != nil {
			return err
		}
		deps.TLSReports = s.reports.rec
	}
	s.engine, err = actors.Start(deps)
	if err != nil {
		return err
	}
	n, err := s.engine.Recover()
	if err != nil {
		return fmt.Errorf("recovery: %w", err)
	}
	log.Info("journal recovered", "messages", n)
	s.journalStats = metrics.JournalCollector(func() metrics.JournalStats {
		w := s.journal.WriteStats()
		return metrics.JournalStats{UserBytes: w.WALLogicalBytes, WALBytes: w.WALPhysicalBytes, FlushBytes: w.FlushedBytes,
			CompactBytes: w.CompactedBytes, BlobBytes: w.BlobBytes, Fsyncs: w.Fsyncs, WriteAmplification: w.WriteAmplification}
	})
	if err := metrics.Registry.Register(s.journalStats); err != nil {
		s.log.Warn("journal metrics not registered", "err", err) // another node in this process has them
		s.journalStats = nil
	}
	if err := s.listen(); err != nil {
		return err
	}
	if err := s.startManagement(); err != nil { // injection admits through submission's limits
		return fmt.Errorf("server.management: %w", err)
	}
	return nil
}

func (s *Server) openDeliveryLog() error {
	if len(s.cfg.Webhooks.Endpoints) > 0 {
		var err error
		if s.hooks, err = webhook.New(s.cfg.Webhooks, s.journal, nil, s.log); err != nil {
			return fmt.Errorf("webhook: %w", err)
		}
		for _, c := range s.hooks.Collectors() {
			if err := metrics.Registry.Register(c); err != nil {
				s.log.Warn("webhook metrics not registered", "err", err) // another node in this process has them
			}
		}
	}
	var observe func(deliverylog.Event)
	if s.hooks != nil {
		observe = s.hooks.Observe
	}
	path := s.cfg.Log.Delivery
	var w io.Writer
	switch path {
	case "":
	case "-":
		w = os.Stdout
	default:
		if !filepath.IsAbs(path) {
			path = filepath.Join(s.cfg.Server.DataDir, path)
		}
		f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640)
		if err != nil {
			return fmt.Errorf("delivery log: %w", err)
		}
		w, s.logFile = f, f
	}
	if w != nil || observe != nil {
		s.delivery = deliverylog.NewObserved(w, 1<<16, s.log, observe)
	}
	return nil
}

func (s *Server) listen() error {
	sub, err := s.submissionSettings(s.cfg)
	if err != nil {
		return err
	}
	s.smtp = submission.New(sub, &acceptor{s}, s.log)
	for name, l := range s.cfg.Server.Listeners {
		for _, addr := range l.Bind {
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return fmt.Errorf("listener %s: %w", name, err)
			}
			s.listeners = append(s.listeners, ln)
			if l.TLS == config.ListenerImplicit {
				if s.implicit == nil {
					s.implicit = map[net.Listener]bool{}
				}
				s.implicit[ln] = true
			}
			s.log.Info("listening", "listener", name, "addr", ln.Addr().String(), "tls", l.TLS)
		}
	}
	for _, ln := range s.listeners {
		s.serving.Add(1)
		go func() {
			defer s.serving.Done()
			serve := s.smtp.Serve
			if s.implicit[ln] {
				serve = s.smtp.ServeTLS
			}
			if err := serve(ln); err != nil && !errors.Is(err, net.ErrClosed) {
				s.log.Error("listener stopped", "addr", ln.Addr().String(), "err", err)
			}
		}()
	}
	return nil
}

// Addrs returns the addresses the listeners are bound to.
func (s *Server) Addrs() []net.Addr {
	out := make([]net.Addr, 0, len(s.listeners))
	for _, l := range s.listeners {
		out = append(out, l.Addr())
	}
	return out
}

// Shutdown stops accepting, lets transactions and deliveries in progress
// finish until ctx ends, and closes the journal. What is cut short is
// retried after the next start.
func (s *Server) Shutdown(ctx context.Context) error {
	var errs []error
	if s.smtp != nil {
		if err := s.smtp.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("submission: %w", err))
		}
		s.serving.Wait()
	}
	if s.engine != nil {
		// The engine stays set: a session goroutine that outlived the
		// submission shutdown may still call Place/Enqueue (Stop is
		// idempotent, and the engine ignores work after it).
		if err := s.engine.Stop(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if s.reports != nil {
		s.reports.close() // after the drain, so its outcomes are saved
		s.reports = nil
	}
	if err := s.closeHooks(ctx); err != nil {
		errs = append(errs, err)
	}
	if err := s.close(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// close releases what Start opened; the engine must be stopped already.
func (s *Server) close() error {
	var errs []error
	if s.mgmt != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = s.mgmt.Shutdown(ctx)
		cancel()
		s.mgmt = nil
	}
	for _, l := range s.listeners {
		_ = l.Close()
	}
	if s.engine != nil {
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.Server.ShutdownTimeout)
		_ = s.engine.Stop(ctx)
		cancel()
	}
	if s.reports != nil {
		s.reports.close()
		s.reports = nil
	}
	s.delivery.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	_ = s.closeHooks(ctx) // what it could not send stays in the journal
	cancel()
	if s.logFile != nil {
		errs = append(errs, s.logFile.Close())
	}
	if s.journalStats != nil {
		metrics.Registry.Unregister(s.journalStats)
		s.journalStats = nil
	}
	if s.journal != nil {
		errs = append(errs, s.journal.Close())
	}
	return errors.Join(errs...)
}

// closeHooks writes the webhook events still in memory to the journal and
// sends what it can until ctx ends; the rest goes after the next start.
func (s *Server) closeHooks(ctx context.Context) error {
	if s.hooks == nil {
		return nil
	}
	for _, c := range s.hooks.Collectors() {
		metrics.Registry.Unregister(c)
	}
	err := s.hooks.Close(ctx)
	s.hooks = nil
	if err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	return nil
}

// acceptor journals submitted messages and hands them to the engine: SMTP
// submission streams bodies through NewBody and AcceptBody, HTTP injection
// (package inject) hands a body in memory to Accept.
type acceptor struct{ s *Server }

var _ submission.Acceptor = (*acceptor)(nil)

func (a *acceptor) NextID() messages.MsgID { return a.s.journal.NextID() }

// NewBody starts the journal body of a message arriving over SMTP.
func (a *acceptor) NewBody(id messages.MsgID) submission.BodyWriter { return a.s.journal.NewBody(id) }

// AcceptBody returns when the message, body included, is durable; the
// engine owns env after. A message refused by its quota, or that failed
// to journal, has its body aborted.
func (a *acceptor) AcceptBody(env *messages.Envelope, body submission.BodyWriter) error {
	w, ok := body.(*persistence.BodyWriter)
	if !ok { // a bug: submission hands back what NewBody returned
		body.Abort()
		return fmt.Errorf("accept %v: body %T is not the journal's", env.ID, body)
	}
	return a.accept(env, func() error { return a.s.journal.AcceptBody(env, w) }, w.Abort)
}

// Accept returns when the message is durable; the engine owns env after.
func (a *acceptor) Accept(env *messages.Envelope, body []byte) error {
	return a.accept(env, func() error { return a.s.journal.Accept(env, body) }, func() {})
}

// accept admits env against the queue quotas, journals it with journal
// and hands it to the engine; abort drops a body already written when the
// message is refused or journal fails.
func (a *acceptor) accept(env *messages.Envelope, journal func() error, abort func()) error {
	a.s.engine.Place(env)
	if q := a.s.quotas; q != nil {
		if err := q.Admit(env); err != nil {
			abort()
			a.s.log.Info("queue quota full", "msgid", env.ID.String(), "err", err)
			return err // 452 4.3.1, nothing journaled
		}
	}
	if err := journal(); err != nil {
		abort()
		if a.s.quotas != nil {
			a.s.quotas.Drop(env.ID)
		}
		return err
	}
	from := env.From
	a.s.delivery.Write(deliverylog.Event{Event: deliverylog.Accepted, MsgID: env.ID.String(), Sender: &from,
		Size: env.Size, Rcpts: len(env.Rcpts), IP: env.ReceivedFromIP})
	a.s.engine.Enqueue(env)
	return nil
}
