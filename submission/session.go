package submission

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mtad/mtad/messages"
)

// Replies of the session. Texts are fixed: nothing internal goes to a peer.
var (
	errNestedMail    = replyErr(503, 5, 5, 1, "Nested MAIL command")
	errNoMail        = replyErr(503, 5, 5, 1, "Need MAIL command")
	errSenderSyntax  = replyErr(501, 5, 1, 7, "Bad sender address syntax")
	errRcptSyntax    = replyErr(501, 5, 1, 3, "Bad recipient address syntax")
	errNeedsUTF8     = replyErr(553, 5, 6, 7, "Non-ASCII address requires SMTPUTF8")
	errRelayDenied   = replyErr(554, 5, 7, 1, "Relay access denied")
	errTooManyRcpts  = replyErr(452, 4, 5, 3, "Too many recipients")
	errLineTooLong   = replyErr(500, 5, 5, 2, "Line too long")
	errTempFailure   = replyErr(451, 4, 3, 0, "Temporary failure, please try again later")
	errRequireTLS    = replyErr(530, 5, 7, 10, "REQUIRETLS needs a TLS session")
	errMessageTooBig = smtp.ErrDataTooLarge // 552 5.3.4
)

func replyErr(code, class, subject, detail int, text string) *smtp.SMTPError {
	return &smtp.SMTPError{Code: code, EnhancedCode: smtp.EnhancedCode{class, subject, detail}, Message: text}
}

func replyLine(code int, ec smtp.EnhancedCode, text string) string {
	return fmt.Sprintf("%d %d.%d.%d %s\r\n", code, ec[0], ec[1], ec[2], text)
}

// session is one client connection after its first HELO/EHLO. go-smtp calls
// Mail, Rcpt, Reset on the connection's goroutine; Data too for DATA, but
// on a goroutine of its own for BDAT, concurrently with Reset and Logout:
// hence mu.
type session struct {
	srv     *Server
	conn    *smtp.Conn
	netConn net.Conn     // conn.Conn() as it was at the start
	tc      *trackedConn // nil if netConn is not ours (never, today)
	log     *slog.Logger // carries remote_ip
	ip      netip.Addr   // invalid when the peer is not TCP
	trusted bool
	exempt  bool // from the admission limits (Limits.Exempt)
	// overTLS is whether the session runs over TLS, implicit or after
	// STARTTLS. It never changes: STARTTLS ends the session (go-smtp calls
	// Logout) and the client's next EHLO starts a new one, which knows
	// nothing from before TLS (RFC 3207 4.2).
	overTLS bool

	// authenticated is the user the client proved to be with AUTH, ""
	// when none. Set once, by Auth on the connection's goroutine (see
	// auth.go); mayRelay lets such a client relay and source reports
	// "authenticated".
	authenticated string

	mu sync.Mutex // guards tx
	tx *txn       // the open transaction, nil outside one
}

// txn is one mail transaction, from MAIL to the end of DATA.
type txn struct {
	env   *messages.Envelope
	seen  map[string]bool // recipients in env, by rcptKey
	proto string          // "with" of the Received header, fixed at MAIL
}

var _ smtp.Session = (*session)(nil)

func newSession(srv *Server, c *smtp.Conn) *session {
	nc := c.Conn()
	ip := remoteIP(nc)
	s := &session{srv: srv, conn: c, netConn: nc, tc: trackedOf(nc), ip: ip,
		trusted: srv.trusted(ip), exempt: srv.exempt(ip)}
	s.log = srv.log.With("remote_ip", ipString(ip))
	attrs := []any{"helo", c.Hostname(), "trusted", s.trusted}
	if state, ok := c.TLSConnectionState(); ok {
		// A session starts at EHLO, after the greeting: the handshake
		// is done.
		s.overTLS = true
		s.tc.setTLS(nc.(*tls.Conn))
		attrs = append(attrs, "tls", tls.VersionName(state.Version), "cipher", tls.CipherSuiteName(state.CipherSuite))
	}
	s.log.Debug("session", attrs...)
	return s
}

func remoteIP(c net.Conn) netip.Addr {
	ap, err := netip.ParseAddrPort(c.RemoteAddr().String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

func ipString(ip netip.Addr) string {
	if !ip.IsValid() {
		return ""
	}
	return ip.String()
}

func (s *session) mayRelay() bool { return s.trusted || s.authenticated != "" }

// source is Envelope.Source: how the message was admitted.
func (s *session) source() string {
	switch {
	case s.authenticated != "":
		return "authenticated"
	case s.trusted:
		return "trusted"
	}
	return ""
}

// Mail opens a transaction. go-smtp has parsed the path and parameters and
// refused a SIZE over the limit (552 5.3.4) and unknown BODY/RET values.
func (s *session) Mail(from string, opts *smtp.MailOptions) error {
	if s.open() {
		return errNestedMail // RFC 5321 4.1.4; go-smtp would allow it
	}
	if opts.RequireTLS && !s.overTLS {
		// RFC 8689: REQUIRETLS is offered, and taken, on TLS sessions
		// only. go-smtp advertises it only there but accepts the
		// parameter on any session.
		return errRequireTLS
	}
	from, err := checkReversePath(from, opts.UTF8)
	if err != nil {
		return addressError(err, errSenderSyntax)
	}
	// Counted here, once every check of the command passed: a MAIL
	// refused only because the server is shutting down still counts.
	if err := s.takeMessage(from); err != nil {
		return err
	}
	if !s.tc.begin() {
		return s.srv.errShutdown
	}
	tx := s.newTxn(from, opts)
	s.mu.Lock()
	s.tx = tx
	s.mu.Unlock()
	s.log.Debug("mail from", "from", from, "size", opts.Size, "body", opts.Body, "smtputf8", opts.UTF8, "requiretls", opts.RequireTLS)
	return nil
}

func (s *session) open() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tx != nil
}

func (s *session) newTxn(from string, opts *smtp.MailOptions) *txn {
	env := &messages.Envelope{
		From:           from,
		Body:           messages.BodyType(opts.Body),
		SMTPUTF8:       opts.UTF8,
		RequireTLS:     opts.RequireTLS,
		Ret:            messages.Ret(opts.Return),
		EnvID:          opts.EnvelopeID,
		ReceivedFromIP: ipString(s.ip),
		Helo:           s.conn.Hostname(),
		Source:         s.source(),
	}
	proto := withProtocol(opts.UTF8, s.overTLS, s.authenticated != "")
	return &txn{env: env, seen: make(map[string]bool), proto: proto}
}

// Rcpt adds a recipient. A duplicate (same address, domain compared
// without case) is accepted and kept once, with its first parameters.
func (s *session) Rcpt(to string, opts *smtp.RcptOptions) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tx == nil {
		return errNoMail
	}
	addr, err := checkAddress(to, s.tx.env.SMTPUTF8)
	if err != nil {
		return addressError(err, errRcptSyntax)
	}
	if err := s.admit(addr); err != nil {
		return err
	}
	if check := s.srv.cfg.CheckRcpt; check != nil {
		if err := check(addr); err != nil {
			s.log.Info("recipient refused", "rcpt", addr, "err", err)
			return err
		}
	}
	s.log.Debug("rcpt to", "rcpt", addr, "notify", opts.Notify, "orcpt", opts.OriginalRecipient)
	return s.tx.add(addr, opts, s.srv.cfg.MaxRecipients)
}

// admit applies the relay rule: a client that may not relay only reaches
// local domains.
func (s *session) admit(addr string) error {
	if s.mayRelay() || s.srv.local[messages.Domain(addr)] {
		return nil
	}
	s.log.Info("relay denied", "rcpt", addr)
	return errRelayDenied
}

func (tx *txn) add(addr string, opts *smtp.RcptOptions, max int) error {
	key := rcptKey(addr)
	if tx.seen[key] {
		return nil
	}
	if len(tx.env.Rcpts) >= max {
		return errTooManyRcpts // go-smtp counts first, this is a backstop
	}
	tx.seen[key] = true
	tx.env.Rcpts = append(tx.env.Rcpts, messages.Recipient{
		Index:  uint32(len(tx.env.Rcpts)),
		Addr:   addr,
		Notify: notifyBits(opts.Notify),
		ORcpt:  orcpt(opts),
	})
	return nil
}

func notifyBits(ns []smtp.DSNNotify) messages.Notify {
	var n messages.Notify
	for _, v := range ns {
		switch v {
		case smtp.DSNNotifyNever:
			n |= messages.NotifyNever
		case smtp.DSNNotifySuccess:
			n |= messages.NotifySuccess
		case smtp.DSNNotifyFailure:
			n |= messages.NotifyFailure
		case smtp.DSNNotifyDelayed:
			n |= messages.NotifyDelay
		}
	}
	return n
}

// orcpt renders ORCPT as "type;address", go-smtp having decoded the xtext.
func orcpt(opts *smtp.RcptOptions) string {
	if opts.OriginalRecipient == "" {
		return ""
	}
	return string(opts.OriginalRecipientType) + ";" + opts.OriginalRecipient
}

// Data streams the message into a body from the Acceptor, has it
// journaled and replies. go-smtp writes the returned *smtp.SMTPError as the
// reply; a 250 "error" is how it lets us say "queued as <id>". The message
// gets its id, arrival time and Received header when DATA starts, since
// the header comes first; after a refusal or an error the body is aborted.
func (s *session) Data(r io.Reader) error {
	tx := s.take()
	if tx == nil {
		return errNoMail
	}
	env := tx.env
	env.ID = s.srv.acc.NextID()
	env.Arrival = time.Now()
	// The message's logger is made only when something is logged: With
	// per message was 1% of the CPU of a busy submission listener.
	log := func() *slog.Logger { return s.log.With("msgid", env.ID.String()) }
	body := s.srv.acc.NewBody(env.ID)
	hdr := receivedHeader(env, s.ip, s.srv.cfg.Hostname, tx.proto)
	size, err := s.receive(body, hdr, r)
	if err != nil {
		body.Abort()
		return s.dataError(log(), err)
	}
	env.Size = size
	if s.tc != nil && s.tc.readFailed.Load() {
		// The client went away: a BDAT chunk may have been cut short
		// (see trackedConn.Read). Nothing is journaled.
		body.Abort()
		log().Info("message not received: the connection failed during its transfer")
		return errTempFailure
	}
	if err := s.srv.acc.AcceptBody(env, body); err != nil {
		return acceptError(log(), err)
	}
	if s.log.Enabled(context.Background(), slog.LevelDebug) {
		log().Debug("message accepted", "from", env.From, "rcpts", len(env.Rcpts), "size", env.Size)
	}
	return replyErr(250, 2, 0, 0, "Ok: queued as "+env.ID.String())
}

// dataBuffer is the size of the reads of a message: go-smtp's reader fills
// the buffer it is given before it returns, so every read but the last is
// this size.
const dataBuffer = 32 << 10

// dataBuffers holds the buffers messages are read through.
var dataBuffers = sync.Pool{New: func() any { b := make([]byte, dataBuffer); return &b }}

// receive writes the Received header, then the message read from r with
// its line ends normalized (eolWriter), to body, and returns the bytes
// written. A message sent with DATA in plain text is read from the socket
// (fastdata.go), any other through r. It holds no more of the message
// than one read buffer (32 KiB); a body of MaxMessageBytes or more is
// refused, by go-smtp's reader or the capture alike.
func (s *session) receive(body io.Writer, hdr string, r io.Reader) (int64, error) {
	cw := &countingWriter{w: body}
	if _, err := io.WriteString(cw, hdr); err != nil {
		return 0, err
	}
	ew := &eolWriter{w: cw}
	if s.capturable(r) {
		captured, src, err := s.receiveCaptured(ew, r)
		if err != nil {
			return 0, err
		}
		if captured {
			return s.closeBody(ew, cw)
		}
		r = src
	}
	buf := dataBuffers.Get().(*[]byte)
	defer dataBuffers.Put(buf)
	if s.tc != nil {
		// The body is read ahead from the socket (trackedConn.Read);
		// what follows it is read as usual.
		s.tc.bulk.Store(true)
		defer s.tc.bulk.Store(false)
	}
	if _, err := io.CopyBuffer(ew, s.bodyReader(r), *buf); err != nil {
		return 0, err
	}
	return s.closeBody(ew, cw)
}

// closeBody ends the body written through ew and cw; it returns its size.
func (s *session) closeBody(ew *eolWriter, cw *countingWriter) (int64, error) {
	if err := ew.Close(); err != nil {
		return 0, err
	}
	return cw.n, nil
}

// countingWriter counts what it writes, and marks the errors of w as
// write errors, to tell them from those of reading the message.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	if err != nil {
		return n, &writeError{err}
	}
	return n, nil
}

// writeError is a failure to store the body, not to read it.
type writeError struct{ err error }

func (e *writeError) Error() string { return "storing the message: " + e.err.Error() }
func (e *writeError) Unwrap() error { return e.err }

// take hands the open transaction to Data; Reset after DATA finds none.
func (s *session) take() *txn {
	s.mu.Lock()
	defer s.mu.Unlock()
	tx := s.tx
	s.tx = nil
	return tx
}

// bodyReader renews the read deadline before each read of the body:
// go-smtp sets it once, at the DATA line.
func (s *session) bodyReader(r io.Reader) io.Reader {
	return readerFunc(func(p []byte) (int, error) {
		s.netConn.SetReadDeadline(time.Now().Add(s.srv.cfg.ReadTimeout))
		return r.Read(p)
	})
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// dataError is the reply to a DATA whose message could not be received
// or stored.
func (s *session) dataError(log *slog.Logger, err error) error {
	var we *writeError
	switch {
	case errors.As(err, &we):
		log.Error("storing the message failed", "error", err)
		return errTempFailure
	case errors.Is(err, smtp.ErrDataTooLarge):
		log.Info("message too big", "max", s.srv.cfg.MaxMessageSize)
		return errMessageTooBig
	case errors.Is(err, smtp.ErrTooLongLine):
		return errLineTooLong
	}
	if errors.Is(err, errCaptureOutOfStep) {
		log.Error("message not received", "error", err)
		return errTempFailure
	}
	log.Debug("message not received", "error", err)
	return errTempFailure
}

func acceptError(log *slog.Logger, err error) error {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		log.Info("message refused", "code", se.Code, "error", err)
		return se // go-smtp asserts the type: never return it wrapped
	}
	log.Error("accept failed", "error", err)
	return errTempFailure
}

// Reset ends the transaction (RSET, end of DATA, new EHLO). go-smtp calls it
// holding its connection lock.
func (s *session) Reset() {
	s.mu.Lock()
	s.tx = nil
	s.mu.Unlock()
	s.tc.end()
}

// Logout is called by go-smtp, on the connection's goroutine, as it closes
// the connection, and when a STARTTLS handshake succeeded: that ends the
// session, and any transaction in it, but not the connection, which now
// runs over TLS (conn.Conn() is the *tls.Conn already).
func (s *session) Logout() error {
	s.mu.Lock()
	s.tx = nil
	s.mu.Unlock()
	if t, ok := s.conn.Conn().(*tls.Conn); ok && !s.overTLS {
		s.log.Debug("starttls")
		s.tc.startedTLS(t)
		return nil
	}
	s.tc.finish()
	return nil
}
