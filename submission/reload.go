package submission

import (
	"crypto/tls"
	"net/netip"
	"slices"
	"sync/atomic"
)

// reloadable is the part of Config that Reconfigure changes.
type reloadable struct {
	trusted []netip.Prefix
	limits  Limits
}

func newReloadable(cfg Config) *reloadable {
	l := cfg.Limits
	l.Exempt = slices.Clone(l.Exempt)
	return &reloadable{trusted: slices.Clone(cfg.TrustedNetworks), limits: l}
}

// limits is the admission limits in force.
func (s *Server) limits() *Limits { return &s.live.Load().limits }

// Reconfigure puts a reloaded configuration in force for new sessions and
// new transactions: trusted networks, admission limits, users (lock-outs
// in force stay) and the certificate (new TLS handshakes present it).
// Sessions in progress keep what they negotiated. Turning TLS on or off,
// sizes, timeouts, the hostname, local domains and MaxConnections need a
// restart: Reconfigure logs each such change and keeps the running value.
func (s *Server) Reconfigure(cfg Config) {
	cfg = cfg.withDefaults()
	s.live.Store(newReloadable(cfg))
	s.auth.setUsers(cfg.Users, s.log)
	switch {
	case (cfg.TLSConfig == nil) != (s.cert == nil):
		s.log.Warn("turning submission TLS on or off needs a restart; the running setting stays")
	case s.cert != nil:
		s.cert.set(cfg.TLSConfig.Certificates)
	}
	old := s.cfg
	for _, c := range []struct {
		name    string
		changed bool
	}{
		{"session.max-message-size", cfg.MaxMessageSize != old.MaxMessageSize},
		{"session.max-recipients", cfg.MaxRecipients != old.MaxRecipients},
		{"session.timeout", cfg.ReadTimeout != old.ReadTimeout || cfg.WriteTimeout != old.WriteTimeout},
		{"server.hostname", cfg.Hostname != old.Hostname},
		{"session.local-domains", !slices.Equal(cfg.LocalDomains, old.LocalDomains)},
		{"session.max-connections", cfg.MaxConnections != old.MaxConnections},
		{"session.auth lock-out and fail delay", cfg.AuthLockout != old.AuthLockout || cfg.AuthFailDelay != old.AuthFailDelay},
	} {
		if c.changed {
			s.log.Warn("configuration change needs a restart; the running value stays", "setting", c.name)
		}
	}
}

// certHolder serves the certificate in force to every TLS handshake, so a
// reload can replace it.
type certHolder struct {
	certs atomic.Pointer[[]tls.Certificate]
}

// holdCertificates moves c's certificates into a holder that c's
// GetCertificate reads (c is the Server's own clone); nil when c is nil.
func holdCertificates(c *tls.Config) *certHolder {
	if c == nil || len(c.Certificates) == 0 || c.GetCertificate != nil {
		return nil
	}
	h := &certHolder{}
	h.set(c.Certificates)
	c.Certificates = nil
	c.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
		return &(*h.certs.Load())[0], nil
	}
	return h
}

func (h *certHolder) set(certs []tls.Certificate) {
	if len(certs) == 0 {
		return
	}
	c := slices.Clone(certs)
	h.certs.Store(&c)
}
