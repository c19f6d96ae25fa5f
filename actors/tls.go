package actors

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/mtad/mtad/config"
	"github.com/mtad/mtad/dane"
	"github.com/mtad/mtad/expression"
	"github.com/mtad/mtad/messages"
	"github.com/mtad/mtad/mtasts"
	"github.com/mtad/mtad/outbound"
)

// How one next hop is to be secured, decided in the destination's resolve
// goroutine from the TLS strategy (evaluated per MX host), the domain's
// MTA-STS policy and the host's DANE records:
//
//   - a DANE policy (authenticated, usable TLSA records) makes TLS
//     mandatory, and the TLSA records, not the WebPKI, decide validity;
//   - an enforced MTA-STS policy skips MX hosts it does not list
//     (permanent for that host) and makes TLS with WebPKI verification
//     mandatory (allow-invalid-certs does not apply);
//   - dane = require without a DANE policy, and mta-sts = require without
//     a policy, fail the host permanently; a TLSA lookup failure fails it
//     temporarily even under optional; an MTA-STS fetch failure under
//     require fails it with the fetch error's class;
//   - otherwise the strategy's starttls mode applies, and
//     allow-invalid-certs skips verification.
type tlsPlan struct {
	strategy     string
	starttls     outbound.TLSMode
	allowInvalid bool
	timeout      time.Duration // STARTTLS and handshake; zero: the connect timeout
	dane         *dane.Policy
	sts          *mtasts.Policy // an enforce or testing policy of the domain
	stsEnforce   bool
	requireTLS   bool            // the destination carries REQUIRETLS messages
	fail         *messages.Reply // this hop must not be used
	failReason   string          // its TLSRPT result type
}

// hop is one address to try, with what DNS and MTA-STS said about its
// host; the TLS plan is made from them when a connection dials, with the
// strategy evaluated for the work that made it dial.
type hop struct {
	outbound.Target
	facts *hopFacts
}

// hopFacts are the security facts of one host, gathered when the
// destination resolves.
type hopFacts struct {
	routeType string
	dane      *dane.Policy
	daneErr   error
	sts       *mtasts.Policy
	stsErr    error
	fixed     *tlsPlan // local LMTP and Maildir: no strategy applies
}

// dialContext is the context of the job that made a connection dial: the
// TLS strategy sees its retry_num and last_error.
type dialContext struct {
	retryNum   int
	lastError  string
	requireTLS bool
	sourceIP   netip.Addr // chosen by the destination (its limits were checked with it); zero: any
}

// plan makes the hop's TLS plan.
func (h hop) plan(cfg *config.Config, domain string, dc dialContext) *tlsPlan {
	f := h.facts
	if f.fixed != nil {
		return f.fixed
	}
	name, s := tlsStrategy(cfg, domain, h.Host, dc)
	p := basePlan(name, s, dc.requireTLS)
	if f.routeType == config.RouteMX {
		p.applySTS(s, f.sts, f.stsErr, h.Host)
		p.applyDANE(s, f.dane, f.daneErr, h.Host)
	}
	return p
}

// stsGetter is the MTA-STS policy source (an *mtasts.Fetcher).
type stsGetter interface {
	Get(ctx context.Context, domain string) (*mtasts.Policy, error)
}

// tlsStrategy evaluates the TLS strategy for one host.
func tlsStrategy(cfg *config.Config, domain, host string, dc dialContext) (string, config.TLSStrategy) {
	env := expression.Env{RcptDomain: domain, MX: host, RetryNum: dc.retryNum, LastError: dc.lastError}
	name, err := cfg.Queue.Strategy.TLS.Eval(&env)
	s, ok := cfg.Queue.TLS[name]
	if err != nil || !ok {
		return "default", cfg.Queue.TLS["default"]
	}
	return name, s
}

// basePlan is the plan the strategy alone gives.
func basePlan(name string, s config.TLSStrategy, requireTLS bool) *tlsPlan {
	p := &tlsPlan{strategy: name, allowInvalid: s.AllowInvalidCerts, timeout: s.Timeout, requireTLS: requireTLS}
	switch s.STARTTLS {
	case config.TLSDisable:
		p.starttls = outbound.TLSDisable
	case config.TLSRequire:
		p.starttls = outbound.TLSRequire
	default:
		p.starttls = outbound.TLSOptional
	}
	if requireTLS { // RFC 8689: only over verified TLS
		p.starttls, p.allowInvalid = outbound.TLSRequire, false
	}
	return p
}

// applySTS folds the domain's MTA-STS outcome into a host's plan.
func (p *tlsPlan) applySTS(s config.TLSStrategy, pol *mtasts.Policy, err error, host string) {
	if s.MTASTS == config.TLSDisable || p.fail != nil {
		return
	}
	var se *mtasts.Error
	switch {
	case err != nil && s.MTASTS == config.TLSRequire:
		r := messages.Reply{Code: 451, Enhanced: "4.7.0", Text: "MTA-STS policy could not be fetched: " + err.Error(), Class: "mta-sts"}
		if errors.As(err, &se) && !se.Temporary {
			r.Code, r.Enhanced = 550, "5.7.0"
		}
		p.fail, p.failReason = &r, mtasts.ReasonFetchError
		if se != nil {
			p.failReason = se.Reason
		}
	case err != nil:
	case (pol == nil || pol.Mode == mtasts.ModeNone) && s.MTASTS == config.TLSRequire:
		p.fail = &messages.Reply{Code: 550, Enhanced: "5.7.0", Text: "MTA-STS is required and the domain publishes no policy", Class: "mta-sts"}
		p.failReason = "sts-policy-invalid"
	case pol == nil || pol.Mode == mtasts.ModeNone:
	case pol.Mode == mtasts.ModeEnforce && !pol.Matches(host):
		p.sts = pol
		p.fail = &messages.Reply{Code: 550, Enhanced: "5.7.0", Text: "MX host " + host + " is not listed in the domain's MTA-STS policy", Class: "mta-sts"}
		p.failReason = "validation-failure"
	case pol.Mode == mtasts.ModeEnforce:
		p.sts, p.stsEnforce = pol, true
		p.starttls, p.allowInvalid = outbound.TLSRequire, false
	default:
		p.sts = pol // testing: report only
	}
}

// applyDANE folds a host's DANE lookup into its plan.
func (p *tlsPlan) applyDANE(s config.TLSStrategy, pol *dane.Policy, err error, host string) {
	if s.DANE == config.TLSDisable || p.fail != nil {
		return
	}
	var de *dane.Error
	switch {
	case err != nil:
		r := messages.Reply{Code: 451, Enhanced: "4.7.5", Text: "DANE lookup failed for " + host, Class: "dane"}
		p.failReason = dane.ReasonDNSSECInvalid
		if errors.As(err, &de) {
			r = messages.Reply{Code: de.Code, Enhanced: de.Enhanced, Text: "DANE: " + de.Error(), Class: "dane"}
			p.failReason = de.Reason
		}
		p.fail = &r
	case pol == nil && s.DANE == config.TLSRequire:
		errors.As(dane.Required(host), &de)
		p.fail = &messages.Reply{Code: de.Code, Enhanced: de.Enhanced, Text: "DANE is required and " + host + " has no usable TLSA records", Class: "dane"}
		p.failReason = dane.ReasonDANERequired
	case pol != nil:
		p.dane = pol
		p.starttls = outbound.TLSRequire
	}
}

// options fills the TLS part of a hop's dial options.
func (p *tlsPlan) options(o *outbound.Options, roots *x509.CertPool, host, domain string) {
	o.STARTTLS = p.starttls
	o.TLSConfig = &tls.Config{RootCAs: roots, ServerName: host}
	if p.timeout > 0 {
		o.TLSTimeout = p.timeout
	}
	switch {
	case p.dane != nil:
		o.TLSConfig.InsecureSkipVerify = true // the TLSA records decide
		pol := p.dane
		o.VerifyPeer = func(cs tls.ConnectionState) error { return daneCheck(pol, cs, host, domain) }
	case p.allowInvalid && !p.stsEnforce:
		o.TLSConfig.InsecureSkipVerify = true
	}
}

// daneCheck verifies a peer against its DANE policy, as an outbound error
// whose class and permanence come from DANE.
func daneCheck(pol *dane.Policy, cs tls.ConnectionState, host, domain string) error {
	err := pol.Verify(cs, host, domain)
	if err == nil {
		return nil
	}
	var de *dane.Error
	if !errors.As(err, &de) {
		return &outbound.Error{Temporary: true, Enhanced: "4.7.5", Message: err.Error(), Class: "dane", Err: err}
	}
	return &outbound.Error{Temporary: de.Temporary, Code: de.Code, Enhanced: de.Enhanced, Message: de.Error(), Class: "dane", Err: err}
}

// reportReason maps a failed TLS session to an RFC 8460 result type.
func reportReason(err error) string {
	var he x509.HostnameError
	var ce x509.CertificateInvalidError
	var ue x509.UnknownAuthorityError
	var de *dane.Error
	switch {
	case errors.Is(err, outbound.ErrTLSNotOffered):
		return "starttls-not-supported"
	case errors.As(err, &de):
		return de.Reason
	case errors.As(err, &he):
		return "certificate-host-mismatch"
	case errors.As(err, &ce) && ce.Reason == x509.Expired:
		return "certificate-expired"
	case errors.As(err, &ue):
		return "certificate-not-trusted"
	}
	return "validation-failure"
}

// policyStrings renders the plan's policy for a TLS report.
func (p *tlsPlan) policy() (string, []string) {
	switch {
	case p.dane != nil:
		var out []string
		for _, r := range p.dane.Records {
			out = append(out, tlsaString(r.Usage, r.Selector, r.MatchingType, r.Data))
		}
		return "tlsa", out
	case p.sts != nil:
		lines := []string{"version: STSv1", "mode: " + string(p.sts.Mode)}
		for _, mx := range p.sts.MX {
			lines = append(lines, "mx: "+mx)
		}
		lines = append(lines, "max_age: "+itoa(int64(p.sts.MaxAge.Seconds())))
		return "sts", lines
	}
	return "no-policy-found", nil
}

func tlsaString(u, s, m uint8, data []byte) string {
	const hex = "0123456789abcdef"
	var b strings.Builder
	b.WriteString(itoa(int64(u)) + " " + itoa(int64(s)) + " " + itoa(int64(m)) + " ")
	for _, c := range data {
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
