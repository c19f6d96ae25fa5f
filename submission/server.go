package submission

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mtad/mtad/limits"
	"github.com/mtad/mtad/messages"
)

// Config is what the listener needs. It is copied by New and never changed
// afterwards; zero values get the defaults noted.
type Config struct {
	Hostname        string         // greeting and Received header; default "localhost"
	MaxMessageSize  int64          // advertised SIZE, enforced while reading DATA; default 50 MiB
	MaxRecipients   int            // per message; default 1000
	TrustedNetworks []netip.Prefix // clients here may relay
	LocalDomains    []string       // recipients here are accepted from anyone (lower-case compare)
	// ReadTimeout bounds each command line and each read of a message
	// body (an idle timeout, so a large message on a slow link is not cut
	// off); WriteTimeout bounds each reply. Default 5m each.
	ReadTimeout, WriteTimeout time.Duration
	MaxLineLength             int // longest command or message line; default 4096
	// MaxConnections bounds the client connections open at once; one more
	// is answered 421 4.7.0 and closed. Bodies stream to the Acceptor, so
	// what a submission holds in memory does not grow with MaxMessageSize.
	// Default 1000.
	MaxConnections int
	// CheckRcpt, if set, is asked about each recipient that passed the
	// relay rule; an *smtp.SMTPError it returns is the RCPT reply (for
	// example 550 5.1.1 for an unknown local mailbox), nil accepts.
	CheckRcpt func(rcpt string) error
	// TLSConfig, when set, turns TLS on: listeners given to Serve offer
	// STARTTLS (RFC 3207), ServeTLS serves implicit TLS (RFC 8314), and
	// TLS sessions offer REQUIRETLS (RFC 8689). Nil: no TLS, and ServeTLS
	// fails. New takes a copy (tls.Config.Clone); LoadTLSConfig makes one
	// from PEM files.
	TLSConfig *tls.Config
	// Limits are the admission limits: connections and messages per
	// client address, messages per sender and per user. The zero value
	// limits nothing. New copies Exempt.
	Limits Limits
	// Users may authenticate with SMTP AUTH (PLAIN and LOGIN, on TLS
	// sessions only): user name -> bcrypt hash ("$2a$...", "$2b$...").
	// Empty: AUTH is not offered. New copies the map; an entry with an
	// empty name or a hash that is not bcrypt is logged and left out
	// (ValidateUsers finds those at load).
	Users map[string]string
	// AuthFailDelay is how long a failed AUTH waits before its 535
	// reply. Default 1s.
	AuthFailDelay time.Duration
	// AuthLockout refuses AUTH (454 4.7.0) to a client address after
	// too many failures. Default 5 failures in 10m, refused for 15m.
	AuthLockout AuthLockout
}

// Defaults for the zero values of Config.
const (
	DefaultHostname       = "localhost"
	DefaultMaxMessageSize = 50 << 20
	DefaultMaxRecipients  = 1000
	DefaultTimeout        = 5 * time.Minute
	DefaultMaxLineLength  = 4096
	DefaultMaxConnections = 1000
	DefaultAuthFailDelay  = time.Second
)

// DefaultAuthLockout is the AuthLockout of the zero Config.
var DefaultAuthLockout = AuthLockout{Failures: 5, Window: 10 * time.Minute, Duration: 15 * time.Minute}

func (c Config) withDefaults() Config {
	if c.Hostname == "" {
		c.Hostname = DefaultHostname
	}
	if c.MaxMessageSize <= 0 {
		c.MaxMessageSize = DefaultMaxMessageSize
	}
	if c.MaxRecipients <= 0 {
		c.MaxRecipients = DefaultMaxRecipients
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = DefaultTimeout
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = DefaultTimeout
	}
	if c.MaxLineLength <= 0 {
		c.MaxLineLength = DefaultMaxLineLength
	}
	if c.MaxConnections <= 0 {
		c.MaxConnections = DefaultMaxConnections
	}
	if c.Limits.Store == nil {
		c.Limits.Store = limits.NewMemory()
	}
	if c.AuthFailDelay <= 0 {
		c.AuthFailDelay = DefaultAuthFailDelay
	}
	c.AuthLockout = c.AuthLockout.withDefaults()
	return c
}

// Acceptor journals messages. Its methods may be called concurrently,
// for many messages at once.
//
// SMTP submission streams: for each message the Server calls NextID, then
// NewBody with that id when DATA starts, and writes the message into the
// body as it arrives. Then it either calls AcceptBody with the complete
// envelope (env.Size is the body's size) or, when the message was refused
// or could not be read, Abort on the body. AcceptBody owns the body: it
// must Abort it itself if it fails. Accept takes a message whose body is
// already in memory; the Server does not call it, HTTP injection (package
// inject) does, through the same Acceptor.
//
// Accept and AcceptBody must return only when the message is durable
// (synced). An error they return that is (by errors.As) an
// *smtp.SMTPError is sent to the client as it is; any other error, and any
// error of Write, is answered 451 4.3.0. env and body are handed over: the
// Server does not read or change them once AcceptBody is called.
type Acceptor interface {
	NextID() messages.MsgID
	NewBody(id messages.MsgID) BodyWriter
	AcceptBody(env *messages.Envelope, body BodyWriter) error
	Accept(env *messages.Envelope, body []byte) error
}

// BodyWriter receives the body of one message, a piece at a time; see
// Acceptor. One session goroutine writes it. Abort drops what was written
// and must be safe to call after a failed Write.
type BodyWriter interface {
	io.Writer
	Abort()
}

// Server is the submission listener. Create it with New.
type Server struct {
	cfg   Config
	acc   Acceptor
	log   *slog.Logger
	gs    *smtp.Server
	local map[string]bool // Config.LocalDomains, lower-cased
	auth  *authenticator
	live  atomic.Pointer[reloadable] // what Reconfigure changes
	cert  *certHolder                // the certificate in force; nil without TLS

	errShutdown *smtp.SMTPError // 421 4.3.2 naming Hostname

	draining atomic.Bool    // set once, by Shutdown, under mu
	serving  sync.WaitGroup // one count per running Serve

	mu        sync.Mutex // guards listeners and conns
	listeners []*listener
	conns     map[*trackedConn]struct{}

	captured atomic.Int64 // messages read from the socket (fastdata.go)
	slowData atomic.Bool  // tests: read every message through go-smtp
}

// New builds a Server; it serves nothing until Serve. A nil log discards.
func New(cfg Config, acc Acceptor, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg = cfg.withDefaults()
	cfg.TLSConfig = cfg.TLSConfig.Clone()
	cfg.Limits.Exempt = slices.Clone(cfg.Limits.Exempt)
	cfg.Users = maps.Clone(cfg.Users)
	s := &Server{
		cfg:   cfg,
		acc:   acc,
		log:   log,
		local: lowerSet(cfg.LocalDomains),
		auth:  newAuthenticator(cfg, log),
		conns: make(map[*trackedConn]struct{}),
	}
	s.cert = holdCertificates(s.cfg.TLSConfig)
	s.live.Store(newReloadable(cfg))
	s.errShutdown = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 2},
		Message: cfg.Hostname + " Service shutting down, closing transmission channel"}
	s.gs = newSMTPServer(cfg, backend{s}, log)
	return s
}

func newSMTPServer(cfg Config, be smtp.Backend, log *slog.Logger) *smtp.Server {
	gs := smtp.NewServer(be)
	gs.Domain = cfg.Hostname
	gs.MaxMessageBytes = cfg.MaxMessageSize
	gs.MaxRecipients = cfg.MaxRecipients
	gs.MaxLineLength = cfg.MaxLineLength
	gs.ReadTimeout = cfg.ReadTimeout
	gs.WriteTimeout = cfg.WriteTimeout
	gs.EnableSMTPUTF8 = true
	gs.EnableDSN = true
	// go-smtp offers STARTTLS when TLSConfig is set and the session is
	// not TLS yet, and REQUIRETLS only on TLS sessions; it accepts the
	// REQUIRETLS parameter of MAIL on any session, session.Mail refuses
	// it in clear.
	gs.TLSConfig = cfg.TLSConfig
	gs.EnableREQUIRETLS = cfg.TLSConfig != nil
	// The session decides where AUTH goes (see session.AuthMechanisms
	// and session.Auth): it offers AUTH on TLS sessions only and answers
	// AUTH in clear 538 5.7.11 (RFC 4954 6). With AllowInsecureAuth false
	// go-smtp would answer that itself, as "523 5.7.10", which is no
	// RFC 4954 reply, without asking the session.
	gs.AllowInsecureAuth = true
	gs.ErrorLog = errorLog{log}
	return gs
}

func lowerSet(domains []string) map[string]bool {
	m := make(map[string]bool, len(domains))
	for _, d := range domains {
		m[strings.ToLower(d)] = true
	}
	return m
}

// Serve accepts connections on l until Shutdown, and returns nil then.
// Sessions start in clear and are offered STARTTLS when Config.TLSConfig
// is set. Many listeners may be served concurrently. After Shutdown it
// closes l at once and returns smtp.ErrServerClosed. A TLSConfig without
// a certificate is an error at once (l is closed).
func (s *Server) Serve(l net.Listener) error {
	return s.serve(l, nil)
}

// ServeTLS is Serve for implicit TLS (RFC 8314 3.3, the submissions port
// 465): every connection is TLS from its first byte, with
// Config.TLSConfig, and STARTTLS is not offered. Without a TLSConfig it
// closes l and returns an error.
func (s *Server) ServeTLS(l net.Listener) error {
	if s.cfg.TLSConfig == nil {
		l.Close()
		return errNoTLSConfig
	}
	return s.serve(l, s.cfg.TLSConfig)
}

// serve serves l, wrapping each connection in TLS with implicit when set.
func (s *Server) serve(l net.Listener, implicit *tls.Config) error {
	if err := checkTLSConfig(s.cfg.TLSConfig); err != nil {
		l.Close()
		return err
	}
	tl := s.addListener(l, implicit)
	if tl == nil {
		l.Close()
		return smtp.ErrServerClosed
	}
	defer s.serving.Done()
	err := s.gs.Serve(tl)
	if s.draining.Load() {
		return nil
	}
	return err
}

func (s *Server) addListener(l net.Listener, implicit *tls.Config) *listener {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.draining.Load() {
		return nil
	}
	s.serving.Add(1)
	tl := &listener{Listener: l, srv: s, tls: implicit}
	s.listeners = append(s.listeners, tl)
	return tl
}

// Shutdown stops accepting new connections at once, tells idle sessions
// 421 4.3.2 and closes them, and lets sessions in the middle of a
// transaction finish it (they are told 421 and closed right after). When
// ctx expires first it closes every connection and returns ctx.Err(); a
// message whose Accept is still running may then be journaled without the
// client having seen the 250. A second call returns smtp.ErrServerClosed.
func (s *Server) Shutdown(ctx context.Context) error {
	if !s.startDrain() {
		return smtp.ErrServerClosed
	}
	// Every Serve has returned: go-smtp adds no connection any more, so
	// its Shutdown does not race its own WaitGroup.
	s.serving.Wait()
	for _, c := range s.connList() {
		c.drain()
	}
	err := s.gs.Shutdown(ctx)
	if err != nil && ctx.Err() != nil {
		for _, c := range s.connList() {
			c.Close()
		}
		return ctx.Err()
	}
	return err
}

// startDrain marks the server draining and closes its listeners; false if
// it was already draining.
func (s *Server) startDrain() bool {
	s.mu.Lock()
	if s.draining.Load() {
		s.mu.Unlock()
		return false
	}
	s.draining.Store(true)
	ls := s.listeners
	s.mu.Unlock()
	for _, l := range ls {
		l.Close()
	}
	return true
}

// addConn tracks c. It refuses c, with the reply to send, when the server
// is draining or has MaxConnections open.
func (s *Server) addConn(c *trackedConn) *smtp.SMTPError {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.draining.Load() {
		return s.errShutdown
	}
	if len(s.conns) >= s.cfg.MaxConnections {
		return errTooManyConns
	}
	s.conns[c] = struct{}{}
	return nil
}

var errTooManyConns = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0},
	Message: "Too many connections, try again later"}

func (s *Server) removeConn(c *trackedConn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

func (s *Server) connList() []*trackedConn {
	s.mu.Lock()
	defer s.mu.Unlock()
	cs := make([]*trackedConn, 0, len(s.conns))
	for c := range s.conns {
		cs = append(cs, c)
	}
	return cs
}

func (s *Server) trusted(ip netip.Addr) bool {
	for _, p := range s.live.Load().trusted {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// backend is the smtp.Backend of a Server; it keeps NewSession off the
// Server's exported API.
type backend struct{ srv *Server }

var _ smtp.Backend = backend{}

// NewSession runs on the connection's goroutine at its first HELO/EHLO.
func (b backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	if b.srv.draining.Load() {
		return nil, b.srv.errShutdown
	}
	return newSession(b.srv, c), nil
}

// listener tracks the connections it accepts, so that Shutdown can reach
// them (go-smtp gives no access to its own), and can be closed twice.
// With tls set it hands go-smtp each connection as a *tls.Conn over the
// tracked one (go-smtp runs the handshake, bounded by its timeouts): the
// tracking, and Shutdown's Close, stay on the TCP connection.
type listener struct {
	net.Listener
	srv  *Server
	tls  *tls.Config // implicit TLS; nil for a plain (STARTTLS) listener
	once sync.Once
	err  error
}

func (l *listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		tc := &trackedConn{Conn: c, srv: l.srv, implicitTLS: l.tls != nil, done: make(chan struct{})}
		e := l.srv.admitConn(tc)
		switch {
		case e == nil && l.tls != nil:
			return tls.Server(tc, l.tls), nil
		case e == nil:
			return tc, nil
		case e == errTooManyConns || e == errTooManyFromIP:
			go tc.bye(e) // bounded by byeTimeout
		default:
			tc.bye(e)
			return nil, net.ErrClosed
		}
	}
}

// admitConn decides whether c is served, before the greeting, and tracks
// it if so; else it returns the reply to send before closing c. The
// address limit goes first, so that connections refused for their address
// never count against MaxConnections. Runs in listener.Accept.
func (s *Server) admitConn(c *trackedConn) *smtp.SMTPError {
	if s.draining.Load() {
		return s.errShutdown
	}
	ip := remoteIP(c.Conn)
	if !s.acquireSlot(c, ip) {
		s.log.Info("connection refused: too many connections from address", "remote_ip", ipString(ip), "max", s.cfg.Limits.ConnectionsPerIP)
		return errTooManyFromIP
	}
	e := s.addConn(c)
	if e == errTooManyConns {
		s.log.Warn("connection refused: too many connections", "remote_ip", ipString(ip), "max", s.cfg.MaxConnections)
	}
	return e
}

func (l *listener) Close() error {
	l.once.Do(func() { l.err = l.Listener.Close() })
	return l.err
}

// errorLog routes go-smtp's internal error log (connection errors, panics)
// into slog.
type errorLog struct{ log *slog.Logger }

func (l errorLog) Printf(format string, v ...any) {
	l.log.Warn("smtp server: " + fmt.Sprintf(format, v...))
}

func (l errorLog) Println(v ...any) {
	l.log.Warn("smtp server: " + strings.TrimSuffix(fmt.Sprintln(v...), "\n"))
}
