package server

import (
	"crypto/tls"
	"errors"
	"fmt"
	"reflect"

	"github.com/mtad/mtad/config"
	"github.com/mtad/mtad/submission"
)

// SetReloader gives the server the way to read its configuration again:
// the same file and command-line overrides it started with. Without one,
// Reload refuses.
func (s *Server) SetReloader(load func() (*config.Config, error)) {
	s.reloadMu.Lock()
	s.loader = load
	s.reloadMu.Unlock()
}

// Reload reads the configuration again and puts it in force without a
// restart: delivery strategies, schedules, routes, connection and TLS
// policies, virtual queue concurrency, outbound limits and shaping rules,
// quota limits, and what submission takes from the configuration (users,
// the certificate, admission limits, sizes). Queued mail stays queued and
// sessions in progress finish as they began.
//
// A configuration that does not load, or that asks for what only a
// restart can do (removing a virtual queue or a quota), is refused: the
// error says why, and the old configuration stays entirely in force.
// Settings that only a restart applies (listeners, the data directory,
// the management listener, the resolver, the delivery log, TLS reports,
// webhooks, the garbage collector's settings) are logged as such and keep
// their running values.
func (s *Server) Reload() error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	if s.loader == nil {
		return errors.New("reload: this server was started without a way to read its configuration again")
	}
	cfg, err := s.loader()
	if err != nil {
		s.log.Error("configuration reload refused; the running configuration stays", "err", err)
		return fmt.Errorf("reload refused: %w", err)
	}
	if err := s.applyConfig(cfg); err != nil {
		s.log.Error("configuration reload refused; the running configuration stays", "file", cfg.File, "err", err)
		return fmt.Errorf("reload refused: %s: %w", cfg.File, err)
	}
	s.log.Info("configuration reloaded", "file", cfg.File)
	return nil
}

// applyConfig checks everything first, then applies: a refusal changes
// nothing.
func (s *Server) applyConfig(cfg *config.Config) error {
	old := s.config()
	for name := range old.Queue.Virtual {
		if _, ok := cfg.Queue.Virtual[name]; !ok {
			return fmt.Errorf("queue.virtual.%s: removed; a running mtad keeps its virtual queues (remove it with a restart once it is empty)", name)
		}
	}
	quotas, err := quotaList(cfg)
	if err != nil {
		return fmt.Errorf("queue.quota: %w", err)
	}
	if (s.quotas == nil) != (len(quotas) == 0) {
		return errors.New("queue.quota: turning quotas on or off needs a restart")
	}
	sub, err := s.submissionSettings(cfg)
	if err != nil {
		return err
	}
	if s.quotas != nil {
		if err := s.quotas.Retune(quotas); err != nil {
			return fmt.Errorf("queue.quota: %w", err)
		}
	}
	if err := s.engine.Reload(cfg); err != nil {
		return err // checked above: cannot happen
	}
	if s.smtp != nil {
		s.smtp.Reconfigure(sub)
	}
	s.live.Store(cfg)
	for _, k := range restartOnly(old, cfg) {
		s.log.Warn("configuration change needs a restart; the running value stays", "setting", k)
	}
	return nil
}

// submissionSettings is what submission takes from cfg; the certificate
// is read here, so a bad one is an error before anything changes.
func (s *Server) submissionSettings(cfg *config.Config) (submission.Config, error) {
	sc := cfg.Session
	var tlsConfig *tls.Config
	if cfg.Server.Certificate != "" {
		var err error
		if tlsConfig, err = submission.LoadTLSConfig(cfg.Server.Certificate, cfg.Server.PrivateKey); err != nil {
			return submission.Config{}, fmt.Errorf("server.tls: %w", err)
		}
	}
	return submission.Config{
		TLSConfig: tlsConfig,
		Hostname:  cfg.Server.Hostname, MaxMessageSize: sc.MaxMessageSize, MaxRecipients: sc.MaxRecipients,
		TrustedNetworks: sc.TrustedNetworks, LocalDomains: sc.LocalDomains, MaxConnections: sc.MaxConnections,
		CheckRcpt: s.checkRcpt,
		Limits: submission.Limits{ConnectionsPerIP: sc.Limits.ConnectionsPerIP, MessagesPerIP: sc.Limits.MessagesPerIP,
			MessagesPerSender: sc.Limits.MessagesPerSender, MessagesPerUser: sc.Limits.MessagesPerUser,
			Exempt: sc.Limits.Exempt, Store: s.shaping},
		Users: sc.Auth.Users, AuthFailDelay: sc.Auth.FailDelay,
		AuthLockout: submission.AuthLockout{Failures: sc.Auth.LockoutFailures, Window: sc.Auth.LockoutWindow, Duration: sc.Auth.LockoutDuration},
		ReadTimeout: sc.Timeout, WriteTimeout: sc.Timeout,
	}, nil
}

// restartOnly names the changed settings that a reload does not apply.
func restartOnly(old, cfg *config.Config) []string {
	var out []string
	diff := func(name string, a, b any) {
		if !reflect.DeepEqual(a, b) {
			out = append(out, name)
		}
	}
	diff("server.data-dir", old.Server.DataDir, cfg.Server.DataDir)
	diff("server.listener", old.Server.Listeners, cfg.Server.Listeners)
	diff("server.management", old.Server.Management, cfg.Server.Management)
	diff("server.shutdown-timeout", old.Server.ShutdownTimeout, cfg.Server.ShutdownTimeout)
	diff("resolver (its nameservers and per-query timeout)", old.Resolver, cfg.Resolver)
	diff("log", old.Log, cfg.Log)
	diff("tls", old.TLS, cfg.TLS)
	diff("report", old.Report, cfg.Report)
	diff("webhook", old.Webhooks, cfg.Webhooks)
	diff("server.gc-percent and memory-limit", [2]int64{int64(old.Server.GCPercent), old.Server.MemoryLimit},
		[2]int64{int64(cfg.Server.GCPercent), cfg.Server.MemoryLimit})
	diff("session.max-connections", old.Session.MaxConnections, cfg.Session.MaxConnections)
	return out
}
