package outbound

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"
)

// Target is one host to try: an MX, a relay or an LMTP server.
type Target struct {
	Host string         // host name, for logs and as the TLS server name
	Addr netip.AddrPort // where to connect
}

// String renders t as "host[ip]:port", or "[ip]:port" without a host.
func (t Target) String() string {
	return fmt.Sprintf("%s[%s]:%d", t.Host, t.Addr.Addr(), t.Addr.Port())
}

// Timeouts bound each network step. A zero field takes the default, the
// values of RFC 5321 section 4.5.3.2 (and 5 minutes to connect).
type Timeouts struct {
	Connect  time.Duration // TCP connect; and TLS, unless Options.TLSTimeout is set
	Greeting time.Duration
	EHLO     time.Duration // EHLO/LHLO, the HELO fallback, and the whole AUTH exchange
	MailFrom time.Duration // MAIL, and RSET
	RcptTo   time.Duration // each RCPT
	Data     time.Duration // DATA, the whole body and the final reply(s)
}

func (t Timeouts) withDefaults() Timeouts {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&t.Connect, 5*time.Minute)
	def(&t.Greeting, 5*time.Minute)
	def(&t.EHLO, 5*time.Minute)
	def(&t.MailFrom, 5*time.Minute)
	def(&t.RcptTo, 5*time.Minute)
	def(&t.Data, 10*time.Minute)
	return t
}

// Options shape a session.
type Options struct {
	Hostname  string     // EHLO/LHLO name; "" = "localhost"
	LocalAddr netip.Addr // source address; the zero Addr lets the system choose
	Timeouts  Timeouts
	LMTP      bool // speak LMTP (RFC 2033): LHLO, and one reply per recipient after DATA
	// NoChunking keeps to DATA with servers that offer CHUNKING (RFC
	// 3030), where messages of up to 1 MiB otherwise go as one BDAT
	// chunk pipelined behind MAIL and RCPT.
	NoChunking bool

	// TLS. ImplicitTLS wraps the connection in TLS before the greeting
	// (RFC 8314); otherwise STARTTLS (RFC 3207) follows the first EHLO as
	// the TLSMode says (the zero value is TLSOptional: use it when
	// advertised). A session already in TLS never sends STARTTLS.
	ImplicitTLS bool
	STARTTLS    TLSMode

	// TLSConfig is used, cloned, for both: its ServerName defaults to
	// Target.Host (SNI and the name verified are the MX host name; the IP
	// address when there is no host), and its MinVersion is raised to TLS
	// 1.2. nil means a zero config: system roots, verified against that
	// name. With InsecureSkipVerify, crypto/tls verifies nothing and
	// VerifyPeer decides (DANE, RFC 7672).
	TLSConfig *tls.Config

	// TLSTimeout bounds the STARTTLS command and the handshake after it
	// together, or the ImplicitTLS handshake. Zero means Timeouts.Connect.
	TLSTimeout time.Duration

	// VerifyPeer, when set, is called after every handshake. An error
	// fails the target: an *Error it returns is used as is (a copy, with
	// Stage and Target set; Class tls when it has none), so DANE or
	// MTA-STS may say "dane" or "mta-sts" and temporary or permanent (a
	// permanent one needs a 5xx Code, see Error.Reply); any other error is
	// a temporary 4.7.0 of Class tls. nil approves the peer: Verified is
	// then true even with InsecureSkipVerify.
	VerifyPeer func(tls.ConnectionState) error

	// Auth, when set, authenticates each session right after its last
	// EHLO (RFC 4954), the one after STARTTLS when there was one, over
	// whatever connection it has: TLS or not is the caller's policy (see
	// the package doc). nil: no AUTH.
	Auth *Auth
}

func (o Options) withDefaults() Options {
	if o.Hostname == "" {
		o.Hostname = "localhost"
	}
	o.Timeouts = o.Timeouts.withDefaults()
	if o.TLSTimeout <= 0 {
		o.TLSTimeout = o.Timeouts.Connect
	}
	return o
}

// How much of the Dial failures the error text lists.
const (
	maxListed = 5
	maxEntry  = 160
)

// Dial tries each target in order until one gives a 220 greeting, accepts
// EHLO (or HELO, when the server answers EHLO with 500 or 502), completes
// STARTTLS as Options.STARTTLS asks and, with Options.Auth, AUTH, and
// returns that session. Otherwise it returns an *Error that lists what
// each target did; it is permanent only when every target failed
// permanently: a 5xx greeting or EHLO, TLS required but not offered, a 5xx
// to a required STARTTLS, or a permanent *Error from VerifyPeer. An Auth
// or a TLSMode no server could take fails at once, temporarily. ctx
// bounds the whole call.
func Dial(ctx context.Context, targets []Target, opts Options) (*Conn, error) {
	opts = opts.withDefaults()
	if e := opts.Auth.check(); e != nil {
		return nil, e
	}
	if e := opts.STARTTLS.check(); e != nil {
		return nil, e
	}
	var fails []*Error
	for _, t := range targets {
		c, e := dialOne(ctx, t, opts)
		if e == nil {
			return c, nil
		}
		fails = append(fails, e)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, dialError(fails)
}

// dialOne opens a session with one target.
func dialOne(ctx context.Context, t Target, o Options) (*Conn, *Error) {
	tcp, err := dialTCP(ctx, t, o)
	if err != nil {
		e := failure(ctx, StageConnect, o.Timeouts.Connect, err)
		e.Target = t.String()
		return nil, e
	}
	c := newConn(tcp, t, o)
	stop := c.watch(ctx, StageEHLO)
	e := c.open(ctx)
	if s := stop(); e == nil {
		e = s
	}
	if e != nil {
		c.abort()
		return nil, e
	}
	return c, nil
}

func dialTCP(ctx context.Context, t Target, o Options) (net.Conn, error) {
	d := net.Dialer{Timeout: o.Timeouts.Connect}
	if o.LocalAddr.IsValid() {
		d.LocalAddr = net.TCPAddrFromAddrPort(netip.AddrPortFrom(o.LocalAddr, 0))
	}
	return d.DialContext(ctx, "tcp", t.Addr.String())
}

// dialError sums up the failures of Dial. Code, Stage and Class come from
// the last failure of the same temporariness as the whole.
func dialError(fails []*Error) *Error {
	if len(fails) == 0 {
		return &Error{Temporary: true, Stage: StageConnect, Class: ClassConnection,
			Message: "no targets", Err: ErrNoTargets}
	}
	rep, permanent := fails[len(fails)-1], true
	for _, f := range fails {
		if f.Temporary {
			rep, permanent = f, false
		}
	}
	e := *rep
	e.Temporary, e.Target, e.Message = !permanent, "", dialSummary(fails)
	return &e
}

// dialSummary says what each target did, within a bounded length.
func dialSummary(fails []*Error) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d target(s) tried", len(fails))
	for i, f := range fails {
		if i == maxListed {
			fmt.Fprintf(&b, "; and %d more", len(fails)-i)
			break
		}
		d := f.detail()
		if len(d) > maxEntry {
			d = strings.ToValidUTF8(d[:maxEntry], "") + "..."
		}
		fmt.Fprintf(&b, "; %s %s: %s", f.Target, f.Stage, d)
	}
	return b.String()
}
