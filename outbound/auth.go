package outbound

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/textproto"
	"slices"
	"strings"

	"github.com/emersion/go-smtp"
)

// Auth is what Dial authenticates with (RFC 4954). See the package doc for
// when it runs and what its failures mean.
type Auth struct {
	Username, Password string

	// Mechanisms allowed, in order of preference, case-insensitive: PLAIN
	// (RFC 4616) and LOGIN are known. Empty means PLAIN, then LOGIN.
	Mechanisms []string
}

// SASL mechanisms, as named in EHLO's AUTH keyword and in Auth.Mechanisms.
const (
	MechPlain = "PLAIN"
	MechLogin = "LOGIN"
)

var defaultMechanisms = []string{MechPlain, MechLogin}

// allowed returns the mechanisms to try, in order, upper-cased.
func (a *Auth) allowed() []string {
	if len(a.Mechanisms) == 0 {
		return defaultMechanisms
	}
	out := make([]string, len(a.Mechanisms))
	for i, m := range a.Mechanisms {
		out[i] = strings.ToUpper(m)
	}
	return out
}

// check reports an Auth that no server could take: an unknown mechanism,
// or a NUL in the credentials (it separates PLAIN's fields, RFC 4616
// section 2). Dial runs it before it connects; a nil Auth is fine.
func (a *Auth) check() *Error {
	if a == nil {
		return nil
	}
	bad := func(err error) *Error {
		return &Error{Temporary: true, Stage: StageAuth, Class: ClassAuth,
			Message: "bad configuration: " + err.Error(), Err: err}
	}
	for _, m := range a.allowed() {
		if m != MechPlain && m != MechLogin {
			return bad(fmt.Errorf("unknown AUTH mechanism %q", m))
		}
	}
	if strings.ContainsRune(a.Username, 0) || strings.ContainsRune(a.Password, 0) {
		return bad(errors.New("AUTH username or password contains NUL"))
	}
	return nil
}

// AuthMechanism returns the SASL mechanism the session authenticated
// with, or "" when it did not.
func (c *Conn) AuthMechanism() string { return c.authMech }

// authenticate runs AUTH once, after the first EHLO, with the first allowed
// mechanism the server offers. PLAIN and LOGIN negotiate no security layer,
// so the session and its EHLO keywords stay as they are (RFC 4954 section
// 4); the EHLO after RSET does not repeat it, as the server keeps the
// authentication. Any failure is temporary: a message must not bounce for
// our credentials or a relay's change of mechanisms. The whole exchange has
// Timeouts.EHLO.
func (c *Conn) authenticate(ctx context.Context) *Error {
	a := c.opts.Auth
	mech, e := c.pickMechanism(a)
	if e != nil {
		return e
	}
	var sent []string // the base64 responses, kept out of errors
	e = c.step(ctx, StageAuth, c.opts.Timeouts.EHLO, func() error {
		err := c.sasl(mech, a, &sent)
		return redact(err, append(sent, a.Password))
	})
	if e != nil {
		e.Temporary = true
		return e
	}
	c.authMech = mech
	return nil
}

// pickMechanism returns the first allowed mechanism the server offers, or
// a temporary 451 4.7.0 that says what it offered.
func (c *Conn) pickMechanism(a *Auth) (string, *Error) {
	offered := c.authOffered()
	allowed := a.allowed()
	for _, m := range allowed {
		if slices.Contains(offered, m) {
			return m, nil
		}
	}
	msg := "server does not offer AUTH"
	if len(offered) > 0 {
		msg = "server offers AUTH " + strings.Join(offered, " ")
	}
	msg = truncate(msg + "; allowed here: " + strings.Join(allowed, " "))
	return "", &Error{Temporary: true, Code: 451, Enhanced: "4.7.0", Message: msg,
		Stage: StageAuth, Class: ClassAuth, Target: c.target.String(), Err: ErrNoMechanism}
}

// authOffered lists the mechanisms of the AUTH keyword, upper-cased. Some
// old servers write it "AUTH=PLAIN LOGIN", alone or besides the standard
// form; that is read too.
func (c *Conn) authOffered() []string {
	var list []string
	if p, ok := c.ext["AUTH"]; ok {
		list = strings.Fields(p)
	}
	for kw, p := range c.ext {
		if m, ok := strings.CutPrefix(kw, "AUTH="); ok {
			list = append(list, m)
			list = append(list, strings.Fields(p)...)
		}
	}
	for i, m := range list {
		list[i] = strings.ToUpper(m)
	}
	slices.Sort(list)
	return slices.Compact(list)
}

// sasl runs one exchange (RFC 4954 section 4), appending each base64
// response to sent before it leaves. PLAIN goes with its initial response
// (RFC 4616 section 2: "\x00" username "\x00" password, no authorization
// identity). LOGIN answers the first 334 with the username and the second
// with the password, whatever their prompt text says ("Username:" and
// "Password:", by custom). A reply other than the one expected ends it.
func (c *Conn) sasl(mech string, a *Auth, sent *[]string) error {
	b64 := func(s string) string {
		r := base64.StdEncoding.EncodeToString([]byte(s))
		*sent = append(*sent, r)
		return r
	}
	if mech == MechPlain {
		_, err := c.wire.cmd(235, "AUTH PLAIN "+b64("\x00"+a.Username+"\x00"+a.Password))
		return err
	}
	if _, err := c.wire.cmd(334, "AUTH LOGIN"); err != nil {
		return err
	}
	if _, err := c.wire.cmd(334, b64(a.Username)); err != nil {
		return err
	}
	_, err := c.wire.cmd(235, b64(a.Password))
	return err
}

// redact takes every secret out of err's text: no credential may reach an
// error, and a server may quote back what it could not decode. A reply
// stays an *smtp.SMTPError, so it is classified as one.
func redact(err error, secrets []string) error {
	if err == nil {
		return nil
	}
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		cp := *se
		cp.Message = redactText(se.Message, secrets)
		return &cp
	}
	s := redactText(err.Error(), secrets)
	var pe textproto.ProtocolError
	switch {
	case s == err.Error():
		return err
	case errors.As(err, &pe):
		return textproto.ProtocolError(s)
	}
	return errors.New(s)
}

func redactText(s string, secrets []string) string {
	for _, sec := range secrets {
		if sec != "" {
			s = strings.ReplaceAll(s, sec, "[redacted]")
		}
	}
	return s
}
