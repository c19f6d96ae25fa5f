package resolver

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/mtad/mtad/metrics"
)

const (
	defaultTimeout   = 5 * time.Second
	defaultAttempts  = 2
	defaultCacheSize = 1024
	defaultPort      = 53
	ednsBufferSize   = 4096
	maxCNAME         = 8 // links followed from the name asked
)

// resolvConf is read when Config.Nameservers is empty; a variable for tests.
var resolvConf = "/etc/resolv.conf"

// Config is the resolver's configuration. Zero values take defaults.
type Config struct {
	// Nameservers are recursive resolvers as "ip" or "ip:port" (port 53
	// by default; IPv6 with a port as "[ip]:port"). Empty: the nameservers
	// of /etc/resolv.conf.
	Nameservers []string
	Timeout     time.Duration // per query try; default 5s
	Attempts    int           // rounds through Nameservers; default 2
	CacheSize   int           // cached answers; default 1024, negative: no cache
}

// Resolver answers MX and address lookups. It is immutable after New and
// safe for concurrent use.
type Resolver struct {
	servers  []string // "ip:port"
	timeout  time.Duration
	attempts int
	udp, tcp *dns.Client
	cache    *cache // nil: no caching
}

// New validates cfg and returns a Resolver. An error names the setting
// that is wrong.
func New(cfg Config) (*Resolver, error) {
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("resolver: timeout %v is negative", cfg.Timeout)
	}
	if cfg.Attempts < 0 {
		return nil, fmt.Errorf("resolver: attempts %d is negative", cfg.Attempts)
	}
	servers, err := nameservers(cfg.Nameservers)
	if err != nil {
		return nil, err
	}
	r := &Resolver{
		servers:  servers,
		timeout:  cmp.Or(cfg.Timeout, defaultTimeout),
		attempts: cmp.Or(cfg.Attempts, defaultAttempts),
	}
	r.udp = &dns.Client{Net: "udp", Timeout: r.timeout, UDPSize: ednsBufferSize}
	r.tcp = &dns.Client{Net: "tcp", Timeout: r.timeout}
	if size := cmp.Or(cfg.CacheSize, defaultCacheSize); size > 0 {
		r.cache = newCache(size, time.Now)
	}
	return r, nil
}

// nameservers returns list as "ip:port" strings, or the system's
// nameservers when list is empty.
func nameservers(list []string) ([]string, error) {
	if len(list) == 0 {
		return systemNameservers()
	}
	out := make([]string, 0, len(list))
	for _, s := range list {
		ap, err := parseNameserver(s)
		if err != nil {
			return nil, fmt.Errorf("resolver: nameserver %q: %w", s, err)
		}
		out = append(out, ap.String())
	}
	return out, nil
}

func parseNameserver(s string) (netip.AddrPort, error) {
	bare := strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
	if addr, err := netip.ParseAddr(bare); err == nil {
		return netip.AddrPortFrom(addr, defaultPort), nil
	}
	ap, err := netip.ParseAddrPort(s)
	switch {
	case err != nil:
		return ap, errors.New("not an ip address or ip:port")
	case ap.Port() == 0:
		return ap, errors.New("port 0")
	}
	return ap, nil
}

func systemNameservers() ([]string, error) {
	cc, err := dns.ClientConfigFromFile(resolvConf)
	if err != nil {
		return nil, fmt.Errorf("resolver: no nameservers configured: %w", err)
	}
	var out []string
	for _, s := range cc.Servers {
		if _, err := netip.ParseAddr(s); err != nil {
			return nil, fmt.Errorf("resolver: nameserver %q in %s: %w", s, resolvConf, err)
		}
		out = append(out, net.JoinHostPort(s, cc.Port))
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("resolver: no nameservers configured and none in %s", resolvConf)
	}
	return out, nil
}

// query returns the response for name (a lower-case FQDN) and qtype: an
// answer, NXDOMAIN or NODATA, from the cache or the nameservers. The
// message may be shared: callers must not modify it.
func (r *Resolver) query(ctx context.Context, name string, qtype uint16) (*dns.Msg, error) {
	key := cacheKey{name: name, qtype: qtype}
	if m, ok := r.cache.get(key); ok {
		metrics.DNSCache.WithLabelValues("hit").Inc()
		return m, nil
	}
	metrics.DNSCache.WithLabelValues("miss").Inc()
	m, err := r.exchange(ctx, newQuery(name, qtype))
	if err != nil {
		return nil, fmt.Errorf("%s query: %w", strings.ToLower(dns.TypeToString[qtype]), err)
	}
	r.cache.put(key, m)
	return m, nil
}

func newQuery(name string, qtype uint16) *dns.Msg {
	q := new(dns.Msg).SetQuestion(name, qtype)
	q.RecursionDesired = true
	q.AuthenticatedData = true       // RFC 6840 section 5.7
	q.SetEdns0(ednsBufferSize, true) // DO: we read AD for DANE
	return q
}

// exchange sends q to the nameservers in turn, for r.attempts rounds, and
// returns the first usable response.
func (r *Resolver) exchange(ctx context.Context, q *dns.Msg) (*dns.Msg, error) {
	var lastErr error
	for range r.attempts {
		for _, ns := range r.servers {
			q.Id = dns.Id()
			resp, err := r.exchangeOne(ctx, q, ns)
			if err == nil {
				return resp, nil
			}
			if ctx.Err() != nil {
				return nil, fmt.Errorf("%w: %w", ctx.Err(), err)
			}
			lastErr = err
		}
	}
	return nil, lastErr
}

// exchangeOne asks one nameserver over UDP, then over TCP if the answer
// was truncated, within r.timeout.
func (r *Resolver) exchangeOne(ctx context.Context, q *dns.Msg, ns string) (*dns.Msg, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	resp, _, err := r.udp.ExchangeContext(ctx, q, ns)
	if err == nil && resp.Truncated {
		resp, _, err = r.tcp.ExchangeContext(ctx, q, ns)
	}
	if err != nil {
		return nil, err
	}
	return resp, check(q, resp)
}

// check accepts answers, NXDOMAIN and NODATA for the question asked.
func check(q, resp *dns.Msg) error {
	if len(resp.Question) != 1 || !strings.EqualFold(resp.Question[0].Name, q.Question[0].Name) ||
		resp.Question[0].Qtype != q.Question[0].Qtype {
		return errors.New("response does not match the question")
	}
	switch resp.Rcode {
	case dns.RcodeSuccess, dns.RcodeNameError:
		return nil
	}
	return fmt.Errorf("%w: %s", ErrServerFailure, dns.RcodeToString[resp.Rcode])
}
