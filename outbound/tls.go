package outbound

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/textproto"
)

// TLSMode is the STARTTLS policy of a session (RFC 3207). The zero value
// is TLSOptional.
type TLSMode uint8

const (
	// TLSOptional sends STARTTLS when the server advertises it and goes on
	// in plaintext when it does not, or when it answers STARTTLS with a
	// 4xx or 5xx reply. A failed handshake still fails the target: there is
	// no plaintext fallback on the same connection.
	TLSOptional TLSMode = iota
	// TLSRequire sends STARTTLS and fails the target when the server does
	// not advertise it or refuses it.
	TLSRequire
	// TLSDisable never sends STARTTLS.
	TLSDisable
)

// String renders m as configuration spells it: "optional", "require" or
// "disable".
func (m TLSMode) String() string {
	switch m {
	case TLSOptional:
		return "optional"
	case TLSRequire:
		return "require"
	case TLSDisable:
		return "disable"
	}
	return fmt.Sprintf("TLSMode(%d)", uint8(m))
}

// tlsEnhanced is the enhanced status of a TLS failure without a reply (a
// handshake that failed or timed out, an unverified certificate, a peer
// VerifyPeer rejected with a plain error): X.7.0, other security status
// (RFC 3463 section 3.8).
const tlsEnhanced = "4.7.0"

// check reports a TLS policy no server could take. Dial runs it before it
// connects.
func (m TLSMode) check() *Error {
	if m <= TLSDisable {
		return nil
	}
	return &Error{Temporary: true, Stage: StageSTARTTLS, Class: ClassTLS,
		Message: "bad configuration: unknown STARTTLS mode " + m.String()}
}

// TLS returns the state of the session's TLS connection; ok is false for
// a plaintext session.
func (c *Conn) TLS() (state tls.ConnectionState, ok bool) {
	if c.tlsState == nil {
		return tls.ConnectionState{}, false
	}
	return *c.tlsState, true
}

// Verified reports a TLS session whose peer was verified: crypto/tls
// verified its certificate chain and name, or Options.VerifyPeer approved
// it (as it must for a handshake with InsecureSkipVerify to count).
func (c *Conn) Verified() bool { return c.verified }

// tlsConfig is Options.TLSConfig as a session uses it: a clone, with
// ServerName defaulting to Target.Host (the IP address without a host,
// which crypto/tls checks against the certificate's IP addresses and does
// not send as SNI), and at least TLS 1.2 (RFC 8996).
func (c *Conn) tlsConfig() *tls.Config {
	cfg := c.opts.TLSConfig.Clone()
	if cfg == nil {
		cfg = &tls.Config{}
	}
	if cfg.ServerName == "" {
		cfg.ServerName = c.target.Host
	}
	if cfg.ServerName == "" && c.target.Addr.IsValid() {
		cfg.ServerName = c.target.Addr.Addr().Unmap().String()
	}
	cfg.MinVersion = max(cfg.MinVersion, tls.VersionTLS12)
	return cfg
}

// implicitTLS runs the handshake of ImplicitTLS (RFC 8314) before the
// greeting. Its failures have Stage connect.
func (c *Conn) implicitTLS(ctx context.Context) *Error {
	tc := tls.Client(c.tcp, c.tlsConfig())
	e := c.step(ctx, StageConnect, c.opts.TLSTimeout, func() error {
		return tc.HandshakeContext(ctx)
	})
	if e != nil {
		return tlsFailure(ctx, e)
	}
	return c.secure(ctx, tc, StageConnect)
}

// starttls applies Options.STARTTLS after the first EHLO (RFC 3207): the
// command, then the handshake, both within Options.TLSTimeout, then
// VerifyPeer and a new EHLO. A session already in TLS skips it. Every
// failure has Stage starttls and Class tls, except one the caller's ctx
// caused, or what VerifyPeer said:
//
//   - not advertised: nothing under TLSOptional; under TLSRequire a
//     permanent 550 5.7.10 (ErrTLSNotOffered), and the next target may
//     offer it;
//   - a 4xx or 5xx reply: plaintext goes on under TLSOptional (section 4:
//     the client decides whether to continue); under TLSRequire, and for a
//     421 (which closes the connection) under either, that reply, temporary
//     or permanent by its code;
//   - no reply, another reply, data after the 220 (which would be taken
//     for the server's words after the handshake), a failed handshake (an
//     unverified certificate included) or the deadline: temporary 4.7.0,
//     and the connection is closed, under either mode. A retry in plaintext
//     is the caller's decision (Class tls tells it why).
func (c *Conn) starttls(ctx context.Context) *Error {
	switch {
	case c.tlsState != nil || c.opts.STARTTLS == TLSDisable:
		return nil
	case !c.has("STARTTLS") && c.opts.STARTTLS == TLSRequire:
		return &Error{Temporary: false, Code: 550, Enhanced: "5.7.10", Stage: StageSTARTTLS, Class: ClassTLS,
			Target: c.target.String(), Message: "TLS required but STARTTLS not offered", Err: ErrTLSNotOffered}
	case !c.has("STARTTLS"):
		return nil
	}
	tc := tls.Client(c.tcp, c.tlsConfig())
	e := c.step(ctx, StageSTARTTLS, c.opts.TLSTimeout, func() error {
		if _, err := c.wire.cmd(220, "STARTTLS"); err != nil {
			return err
		}
		if c.pending() {
			return textproto.ProtocolError("data after the 220 reply to STARTTLS")
		}
		return tc.HandshakeContext(ctx)
	})
	switch {
	case e != nil && e.Code >= 400 && !e.fatal() && c.opts.STARTTLS == TLSOptional:
		return nil
	case e != nil:
		return tlsFailure(ctx, e)
	}
	if e := c.secure(ctx, tc, StageSTARTTLS); e != nil {
		return e
	}
	// Section 4.2: forget what the server said in plaintext; EHLO again.
	c.wire, c.ext = newWire(tc, tc), nil
	return c.hello(ctx)
}

// pending reports bytes read from the server and not yet consumed: the
// rest of the greeting as first read, or what the wire buffered.
func (c *Conn) pending() bool {
	return c.greeting.Len() > 0 || c.wire.r.R.Buffered() > 0
}

// secure adopts tc after its handshake, once Options.VerifyPeer, if set,
// has approved it. An error from VerifyPeer closes the connection and is
// returned as an *Error: the one VerifyPeer returned (a copy, with stage
// and target set), or a temporary 4.7.0 of Class tls.
func (c *Conn) secure(ctx context.Context, tc *tls.Conn, stage string) *Error {
	state := tc.ConnectionState()
	verified := len(state.VerifiedChains) > 0 // crypto/tls checked chain and name
	if c.opts.VerifyPeer != nil {
		if err := c.opts.VerifyPeer(state); err != nil {
			return c.kill(c.peerError(stage, err))
		}
		verified = true
	}
	c.nc, c.tlsState, c.verified = tc, &state, verified
	return nil
}

func (c *Conn) peerError(stage string, err error) *Error {
	var pe *Error
	if errors.As(err, &pe) {
		e := *pe
		e.Stage, e.Target = stage, c.target.String()
		if e.Class == "" {
			e.Class = ClassTLS
		}
		return &e
	}
	return &Error{Temporary: true, Enhanced: tlsEnhanced, Stage: stage, Class: ClassTLS,
		Target: c.target.String(), Message: "peer rejected: " + truncate(err.Error()), Err: err}
}

// tlsFailure classes a failed STARTTLS or handshake: Class tls, and the
// enhanced status 4.7.0 when there was no reply, unless the caller's ctx
// ended it (then it stays canceled or timeout).
func tlsFailure(ctx context.Context, e *Error) *Error {
	if ctx.Err() != nil {
		return e
	}
	e.Class = ClassTLS
	if e.Code == 0 {
		e.Enhanced = tlsEnhanced
	}
	return e
}

// requireTLSGap says why a REQUIRETLS transaction (RFC 8689 section 4.2.1)
// cannot go over this session: it must be TLS with a verified peer, and
// the server must advertise REQUIRETLS in the EHLO after the handshake.
// "" means it can.
func (c *Conn) requireTLSGap() string {
	switch {
	case c.tlsState == nil:
		return "the session with " + c.target.String() + " is not TLS"
	case !c.verified:
		return "the certificate of " + c.target.String() + " was not verified"
	case !c.has("REQUIRETLS"):
		return c.target.String() + " does not offer REQUIRETLS"
	}
	return ""
}
