package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/mtad/mtad/expression"
	"github.com/mtad/mtad/limits"
	"github.com/mtad/mtad/submission"
	"github.com/mtad/mtad/webhook"
)

func (r *rawConfig) validate() (*Config, []error) {
	c := &Config{}
	steps := []func(*Config) error{
		r.Server.validate, r.Session.validate, r.Resolver.validate, r.Log.validate,
		r.TLS.validate, r.Report.validate,
		r.Queue.validateVirtual, r.Queue.validateSchedules, r.Queue.validateRoutes,
		r.Queue.validateConnections, r.Queue.validateTLS, r.Queue.validateQuotas, r.Queue.validateLimits,
		r.Queue.validateShaping, r.Webhook.validate,
	}
	// Every section is checked, so one run reports every section's first
	// problem (a later section may add one caused by an earlier mistake).
	var errs []error
	for _, step := range steps {
		if err := step(c); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return nil, errs // the selectors are checked once the definitions they name are sound
	}
	if err := r.Queue.validateStrategy(c); err != nil {
		return nil, []error{err}
	}
	return c, nil
}

func (r *rawServer) validate(c *Config) error {
	c.Server.Hostname = r.Hostname
	if c.Server.Hostname == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			h = "localhost"
		}
		c.Server.Hostname = h
	}
	c.Server.DataDir = r.DataDir
	if c.Server.DataDir == "" {
		c.Server.DataDir = "data"
	}
	var err error
	if c.Server.ShutdownTimeout, err = durationOr("server.shutdown-timeout", r.ShutdownTimeout, 30*time.Second); err != nil {
		return err
	}
	c.Server.GCPercent = 200
	if r.GCPercent != nil {
		if *r.GCPercent < 50 || *r.GCPercent > 10000 {
			return fmt.Errorf("server.gc-percent: %d is not between 50 and 10000", *r.GCPercent)
		}
		c.Server.GCPercent = *r.GCPercent
	}
	c.Server.MemoryLimit = 640 << 20
	switch strings.TrimSpace(r.MemoryLimit) {
	case "":
	case "0":
		c.Server.MemoryLimit = 0
	default:
		if c.Server.MemoryLimit, err = parseSize("server.memory-limit", r.MemoryLimit); err != nil {
			return err
		}
		if c.Server.MemoryLimit < 64<<20 {
			return fmt.Errorf("server.memory-limit: %s is below 64MB", r.MemoryLimit)
		}
	}
	c.Server.Certificate, c.Server.PrivateKey = r.TLS.Certificate, r.TLS.PrivateKey
	if (r.TLS.Certificate == "") != (r.TLS.PrivateKey == "") {
		return fmt.Errorf("server.tls: set both certificate and private-key, or neither")
	}
	if c.Server.Management, err = r.Management.validate(); err != nil {
		return err
	}
	c.Server.Listeners = map[string]Listener{}
	for name, l := range r.Listener {
		out, err := l.validate("server.listener."+name, c.Server.Certificate != "")
		if err != nil {
			return err
		}
		c.Server.Listeners[name] = out
	}
	return nil
}

func (m *rawManagement) validate() (Management, error) {
	out := Management{Bind: m.Bind}
	set := 0
	for _, v := range []string{m.Token, m.TokenEnv, m.TokenFile} {
		if v != "" {
			set++
		}
	}
	if set > 1 {
		return out, fmt.Errorf("server.management: set one of token, token-env, token-file")
	}
	switch {
	case m.TokenEnv != "":
		out.Token = os.Getenv(m.TokenEnv)
		if out.Token == "" {
			return out, fmt.Errorf("server.management.token-env: environment variable %s is not set", m.TokenEnv)
		}
	case m.TokenFile != "":
		b, err := os.ReadFile(m.TokenFile)
		if err != nil {
			return out, fmt.Errorf("server.management.token-file: %w", err)
		}
		out.Token = strings.TrimSpace(string(b))
	default:
		out.Token = m.Token
	}
	if m.Bind == "" {
		return out, nil
	}
	host, _, err := net.SplitHostPort(m.Bind)
	if err != nil {
		return out, fmt.Errorf("server.management.bind: bad address %q (want host:port)", m.Bind)
	}
	if ip, err := netip.ParseAddr(host); out.Token == "" && (err != nil || !ip.IsLoopback()) {
		return out, fmt.Errorf("server.management.bind: %q is not a loopback address; set a token first", m.Bind)
	}
	return out, nil
}

func (l *rawListener) validate(key string, haveCert bool) (Listener, error) {
	if len(l.Bind) == 0 {
		return Listener{}, fmt.Errorf("%s.bind: at least one address is needed", key)
	}
	for i, b := range l.Bind {
		if _, _, err := net.SplitHostPort(b); err != nil {
			return Listener{}, fmt.Errorf("%s.bind[%d]: bad address %q (want host:port)", key, i, b)
		}
	}
	out := Listener{Bind: l.Bind, TLS: l.TLS}
	switch l.TLS {
	case "":
		out.TLS = ListenerPlain
		if haveCert {
			out.TLS = ListenerSTARTTLS
		}
	case ListenerPlain:
		if haveCert {
			return out, fmt.Errorf("%s.tls: \"none\" with server.tls configured: every plain listener offers STARTTLS then (use starttls or implicit)", key)
		}
	case ListenerSTARTTLS, ListenerImplicit:
		if !haveCert {
			return out, fmt.Errorf("%s.tls: %q needs server.tls.certificate and private-key", key, l.TLS)
		}
	default:
		return out, fmt.Errorf("%s.tls: %q is not none, starttls or implicit", key, l.TLS)
	}
	return out, nil
}

func (r *rawTLS) validate(c *Config) error {
	c.TLS.CAFile = r.CAFile
	var err error
	if c.TLS.MTASTSPort, err = portOr("tls.mta-sts-port", r.MTASTSPort, 443); err != nil {
		return err
	}
	c.TLS.MTASTSTimeout, err = durationOr("tls.mta-sts-timeout", r.MTASTSTimeout, 10*time.Second)
	return err
}

func (r *rawReport) validate(c *Config) error {
	t := r.TLS
	c.Report.TLS = TLSReport{Enable: t.Enable, From: t.From, Organization: t.Organization}
	if t.From != "" && !strings.Contains(t.From, "@") {
		return fmt.Errorf("report.tls.from: %q is not an address", t.From)
	}
	at := t.SendAt
	if at == "" {
		at = "00:30"
	}
	hm, err := time.Parse("15:04", at)
	if err != nil {
		return fmt.Errorf("report.tls.send-at: %q is not a time of day like \"00:30\"", at)
	}
	c.Report.TLS.SendAt = time.Duration(hm.Hour())*time.Hour + time.Duration(hm.Minute())*time.Minute
	return nil
}

var limitFields = map[string]bool{"rcpt_domain": true, "sender": true, "sender_domain": true, "mx": true,
	"remote_ip": true, "local_ip": true, "queue_name": true, "site": true}

func (r *rawQueue) validateLimits(c *Config) error {
	c.Queue.Site = map[string]Site{}
	for name, s := range r.Site {
		if len(s.MXSuffix) == 0 {
			return fmt.Errorf("queue.site.%s.mx-suffix: at least one suffix is needed", name)
		}
		var out Site
		for _, suf := range s.MXSuffix {
			out.MXSuffix = append(out.MXSuffix, strings.ToLower(strings.TrimSuffix(suf, ".")))
		}
		c.Queue.Site[name] = out
	}
	names := make([]string, 0, len(r.Limit))
	for n := range r.Limit {
		names = append(names, n)
	}
	sort.Strings(names)
	f := expression.Funcs{LocalDomains: c.Session.LocalDomains}
	for _, name := range names {
		l, key := r.Limit[name], "queue.limit."+name
		if l.Enable != nil && !*l.Enable {
			continue
		}
		out, err := l.validate(key, f, len(c.Queue.Site) > 0)
		if err != nil {
			return err
		}
		out.Name = name
		c.Queue.Limit = append(c.Queue.Limit, out)
	}
	return nil
}

func (r *rawQueue) validateShaping(c *Config) error {
	names := make([]string, 0, len(r.Shaping))
	for n := range r.Shaping {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		s, key := r.Shaping[name], "queue.shaping."+name
		out := ShapingRule{Name: name, Enhanced: s.Enhanced, Site: s.Site, Action: s.Action}
		if s.Code != nil {
			if *s.Code < 2 || *s.Code > 599 {
				return fmt.Errorf("%s.code: %d is not a reply code or class (e.g. 421, 45, 4)", key, *s.Code)
			}
			out.Code = *s.Code
		}
		if s.Text != "" {
			re, err := regexp.Compile(s.Text)
			if err != nil {
				return fmt.Errorf("%s.text: %w", key, err)
			}
			out.Text = re
		}
		if s.Site != "" {
			if _, ok := c.Queue.Site[s.Site]; !ok {
				return fmt.Errorf("%s.site: no [queue.site.%s] is defined", key, s.Site)
			}
		}
		switch s.Action {
		case ShapeSuspend, ShapeFail:
		case ShapeReduce:
			if s.Factor == nil || *s.Factor <= 0 || *s.Factor >= 1 {
				return fmt.Errorf("%s.factor: reduce needs a factor between 0 and 1", key)
			}
			out.Factor = *s.Factor
		default:
			return fmt.Errorf("%s.action: %q is not suspend, reduce or fail", key, s.Action)
		}
		if s.Code == nil && s.Enhanced == "" && s.Text == "" {
			return fmt.Errorf("%s: a rule needs code, enhanced or text to match", key)
		}
		var err error
		if out.Duration, err = durationOr(key+".duration", s.Duration, 10*time.Minute); err != nil {
			return err
		}
		c.Queue.Shaping = append(c.Queue.Shaping, out)
	}
	return nil
}

func (l *rawLimit) validate(key string, f expression.Funcs, haveSites bool) (Limit, error) {
	var out Limit
	for i, k := range l.Key {
		if !limitFields[k] {
			return out, fmt.Errorf("%s.key[%d]: %q is not one of rcpt_domain, sender, sender_domain, mx, remote_ip, local_ip, queue_name, site", key, i, k)
		}
		if k == "site" && !haveSites {
			return out, fmt.Errorf("%s.key[%d]: site, but no [queue.site.*] is defined", key, i)
		}
		out.Key = append(out.Key, k)
	}
	var err error
	if l.Rate != "" {
		if out.Rate, err = limits.ParseRate(l.Rate); err != nil {
			return out, fmt.Errorf("%s.rate: %w", key, err)
		}
	}
	if l.ConnectionRate != "" {
		if out.ConnectionRate, err = limits.ParseRate(l.ConnectionRate); err != nil {
			return out, fmt.Errorf("%s.connection-rate: %w", key, err)
		}
	}
	if out.Concurrency, err = intOr(key+".concurrency", l.Concurrency, 0, 1); err != nil {
		return out, err
	}
	if out.MessagesPerConn, err = intOr(key+".messages-per-connection", l.MessagesPerConnection, 0, 1); err != nil {
		return out, err
	}
	if out.Rate.IsZero() && out.ConnectionRate.IsZero() && out.Concurrency == 0 && out.MessagesPerConn == 0 {
		return out, fmt.Errorf("%s: set rate, connection-rate, concurrency or messages-per-connection", key)
	}
	if l.Match != "" {
		if out.Match, err = expression.CompileBool(key+".match", l.Match, f); err != nil {
			return out, err
		}
	}
	return out, nil
}

func (r *rawQueue) validateQuotas(c *Config) error {
	c.Queue.Quota = map[string]Quota{}
	f := expression.Funcs{LocalDomains: c.Session.LocalDomains}
	for name, q := range r.Quota {
		key := "queue.quota." + name
		out := Quota{Key: q.Key}
		switch q.Key {
		case "", "sender", "sender_domain", "rcpt", "rcpt_domain":
		default:
			return fmt.Errorf("%s.key: %q is not sender, sender_domain, rcpt or rcpt_domain (or empty for a global quota)", key, q.Key)
		}
		if q.Messages != nil {
			if *q.Messages < 1 {
				return fmt.Errorf("%s.messages: must be at least 1", key)
			}
			out.Messages = *q.Messages
		}
		if q.Size != "" {
			n, err := parseSize(key+".size", q.Size)
			if err != nil {
				return err
			}
			out.Bytes = n
		}
		if out.Messages == 0 && out.Bytes == 0 {
			return fmt.Errorf("%s: set messages, size or both", key)
		}
		if q.Match != "" {
			p, err := expression.CompileBool(key+".match", q.Match, f)
			if err != nil {
				return err
			}
			out.Match = p
		}
		c.Queue.Quota[name] = out
	}
	return nil
}

func (r *rawQueue) validateTLS(c *Config) error {
	c.Queue.TLS = map[string]TLSStrategy{}
	def := TLSStrategy{STARTTLS: TLSOptional, DANE: TLSOptional, MTASTS: TLSOptional, Timeout: 30 * time.Second}
	if _, ok := r.TLS["default"]; !ok {
		c.Queue.TLS["default"] = def
	}
	for name, t := range r.TLS {
		key := "queue.tls." + name
		out := TLSStrategy{AllowInvalidCerts: t.AllowInvalidCerts}
		for _, f := range []struct {
			name string
			in   string
			dst  *string
		}{{"starttls", t.STARTTLS, &out.STARTTLS}, {"dane", t.DANE, &out.DANE}, {"mta-sts", t.MTASTS, &out.MTASTS}} {
			switch f.in {
			case "":
				*f.dst = TLSOptional
			case TLSDisable, TLSOptional, TLSRequire:
				*f.dst = f.in
			default:
				return fmt.Errorf("%s.%s: %q is not disable, optional or require", key, f.name, f.in)
			}
		}
		if out.STARTTLS == TLSDisable && (out.DANE == TLSRequire || out.MTASTS == TLSRequire) {
			return fmt.Errorf("%s: starttls = \"disable\" contradicts dane or mta-sts = \"require\"", key)
		}
		var err error
		if out.Timeout, err = durationOr(key+".timeout", t.Timeout, 30*time.Second); err != nil {
			return err
		}
		c.Queue.TLS[name] = out
	}
	return nil
}

func (r *rawSession) validate(c *Config) error {
	s := &c.Session
	nets := r.TrustedNetworks
	if nets == nil {
		nets = []string{"127.0.0.0/8", "::1/128"}
	}
	for i, n := range nets {
		p, err := netip.ParsePrefix(n)
		if err != nil {
			a, aerr := netip.ParseAddr(n)
			if aerr != nil {
				return fmt.Errorf("session.trusted-networks[%d]: bad network %q (want CIDR like 10.0.0.0/8)", i, n)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		s.TrustedNetworks = append(s.TrustedNetworks, p.Masked())
	}
	for i, d := range r.LocalDomains {
		if !validDomain(d) {
			return fmt.Errorf("session.local-domains[%d]: bad domain %q", i, d)
		}
		s.LocalDomains = append(s.LocalDomains, strings.ToLower(d))
	}
	var err error
	s.MaxMessageSize = 50 << 20
	if r.MaxMessageSize != "" {
		if s.MaxMessageSize, err = parseSize("session.max-message-size", r.MaxMessageSize); err != nil {
			return err
		}
	}
	if s.MaxRecipients, err = intOr("session.max-recipients", r.MaxRecipients, 1000, 1); err != nil {
		return err
	}
	if s.MaxConnections, err = intOr("session.max-connections", r.MaxConnections, 1000, 1); err != nil {
		return err
	}
	if s.Timeout, err = durationOr("session.timeout", r.Timeout, 5*time.Minute); err != nil {
		return err
	}
	if s.Limits, err = r.Limits.validate(); err != nil {
		return err
	}
	s.Auth, err = r.Auth.validate()
	return err
}

func (a *rawAuthUsers) validate() (SubmissionAuth, error) {
	out := SubmissionAuth{Users: map[string]string{}}
	for user, hash := range a.Users {
		if err := submission.CheckPasswordHash(hash); err != nil {
			return out, fmt.Errorf("session.auth.users.%s: %v (make a bcrypt one with `htpasswd -bnBC 12 \"\" PASSWORD | tr -d ':\\n'`, or an argon2id one with `echo -n PASSWORD | argon2 SALT -id -e`)", user, err)
		}
		out.Users[user] = hash
	}
	var err error
	if out.FailDelay, err = durationOr("session.auth.fail-delay", a.FailDelay, time.Second); err != nil {
		return out, err
	}
	if out.LockoutFailures, err = intOr("session.auth.lockout.failures", a.Lockout.Failures, 5, 1); err != nil {
		return out, err
	}
	if out.LockoutWindow, err = durationOr("session.auth.lockout.window", a.Lockout.Window, 10*time.Minute); err != nil {
		return out, err
	}
	out.LockoutDuration, err = durationOr("session.auth.lockout.duration", a.Lockout.Duration, 15*time.Minute)
	return out, err
}

func (a *rawAdmission) validate() (AdmissionLimits, error) {
	var out AdmissionLimits
	var err error
	if out.ConnectionsPerIP, err = intOr("session.limits.connections-per-ip", a.ConnectionsPerIP, 0, 0); err != nil {
		return out, err
	}
	for _, r := range []struct {
		key string
		in  string
		dst *limits.Rate
	}{
		{"messages-per-ip", a.MessagesPerIP, &out.MessagesPerIP},
		{"messages-per-sender", a.MessagesPerSender, &out.MessagesPerSender},
		{"messages-per-user", a.MessagesPerUser, &out.MessagesPerUser},
	} {
		if r.in == "" {
			continue
		}
		if *r.dst, err = limits.ParseRate(r.in); err != nil {
			return out, fmt.Errorf("session.limits.%s: %w", r.key, err)
		}
	}
	for i, n := range a.Exempt {
		p, err := netip.ParsePrefix(n)
		if err != nil {
			return out, fmt.Errorf("session.limits.exempt[%d]: bad network %q", i, n)
		}
		out.Exempt = append(out.Exempt, p.Masked())
	}
	return out, nil
}

func (r *rawResolver) validate(c *Config) error {
	for i, ns := range r.Nameservers {
		host := ns
		if h, _, err := net.SplitHostPort(ns); err == nil {
			host = h
		}
		if _, err := netip.ParseAddr(host); err != nil {
			return fmt.Errorf("resolver.nameservers[%d]: bad nameserver %q (want an IP or IP:port)", i, ns)
		}
	}
	c.Resolver.Nameservers = r.Nameservers
	var err error
	if c.Resolver.Timeout, err = durationOr("resolver.timeout", r.Timeout, 5*time.Second); err != nil {
		return err
	}
	c.Resolver.Attempts, err = intOr("resolver.attempts", r.Attempts, 2, 1)
	return err
}

func (r *rawLog) validate(c *Config) error {
	switch r.Level {
	case "":
		c.Log.Level = "info"
	case "debug", "info", "warn", "error":
		c.Log.Level = r.Level
	default:
		return fmt.Errorf("log.level: %q is not one of debug, info, warn, error", r.Level)
	}
	c.Log.Delivery = "delivery.log"
	if r.Delivery != nil {
		c.Log.Delivery = *r.Delivery
	}
	return nil
}

func (r *rawQueue) validateVirtual(c *Config) error {
	c.Queue.Virtual = map[string]VirtualQueue{}
	if _, ok := r.Virtual["default"]; !ok {
		c.Queue.Virtual["default"] = VirtualQueue{Concurrency: 256, DestinationConnections: 8, MessagesPerConnection: 1000, IdleTimeout: 5 * time.Second}
	}
	for name, v := range r.Virtual {
		key := "queue.virtual." + name
		var q VirtualQueue
		var err error
		if q.Concurrency, err = intOr(key+".concurrency", v.Concurrency, 256, 1); err != nil {
			return err
		}
		if q.DestinationConnections, err = intOr(key+".destination-connections", v.DestinationConnections, 8, 1); err != nil {
			return err
		}
		if q.MessagesPerConnection, err = intOr(key+".messages-per-connection", v.MessagesPerConnection, 1000, 1); err != nil {
			return err
		}
		if q.IdleTimeout, err = durationOr(key+".idle-timeout", v.IdleTimeout, 5*time.Second); err != nil {
			return err
		}
		c.Queue.Virtual[name] = q
	}
	return nil
}

func (r *rawQueue) validateSchedules(c *Config) error {
	c.Queue.Schedule = map[string]Schedule{}
	if _, ok := r.Schedule["default"]; !ok {
		c.Queue.Schedule["default"] = defaultSchedule()
	}
	for name, s := range r.Schedule {
		sc, err := s.validate("queue.schedule."+name, c)
		if err != nil {
			return err
		}
		c.Queue.Schedule[name] = sc
	}
	return nil
}

func defaultSchedule() Schedule {
	m := time.Minute
	return Schedule{
		Queue:  "default",
		Retry:  []time.Duration{2 * m, 5 * m, 10 * m, 15 * m, 30 * m, 60 * m, 120 * m},
		Notify: []time.Duration{24 * time.Hour, 72 * time.Hour},
		Expire: 5 * 24 * time.Hour,
	}
}

func (s *rawSchedule) validate(key string, c *Config) (Schedule, error) {
	def := defaultSchedule()
	out := Schedule{Queue: s.Queue}
	if out.Queue == "" {
		out.Queue = "default"
	}
	if _, ok := c.Queue.Virtual[out.Queue]; !ok {
		return out, fmt.Errorf("%s.queue: no virtual queue %q is defined (queue.virtual.%s)", key, out.Queue, out.Queue)
	}
	var err error
	out.Retry = def.Retry
	if s.Retry != nil {
		if len(s.Retry) == 0 {
			return out, fmt.Errorf("%s.retry: at least one interval is needed", key)
		}
		if out.Retry, err = parseDurations(key+".retry", s.Retry); err != nil {
			return out, err
		}
	}
	out.Notify = def.Notify
	if s.Notify != nil {
		if out.Notify, err = parseDurations(key+".notify", s.Notify); err != nil {
			return out, err
		}
	}
	if s.MaxAttempts != nil && s.Expire != "" {
		return out, fmt.Errorf("%s: set expire or max-attempts, not both", key)
	}
	if s.MaxAttempts != nil {
		out.MaxAttempts, err = intOr(key+".max-attempts", s.MaxAttempts, 0, 1)
		return out, err
	}
	out.Expire, err = durationOr(key+".expire", s.Expire, def.Expire)
	return out, err
}

func (r *rawQueue) validateRoutes(c *Config) error {
	c.Queue.Route = map[string]Route{}
	if _, ok := r.Route["mx"]; !ok {
		c.Queue.Route["mx"] = Route{Type: RouteMX, MaxMX: 5, MaxMultihomed: 2, IPLookup: "ipv4_then_ipv6", Port: 25}
	}
	if _, ok := r.Route["local"]; !ok {
		c.Queue.Route["local"] = Route{Type: RouteLocal, Maildir: "mail"}
	}
	for name, rt := range r.Route {
		out, err := rt.validate("queue.route." + name)
		if err != nil {
			return err
		}
		c.Queue.Route[name] = out
	}
	return nil
}

func (r *rawRoute) validate(key string) (Route, error) {
	out := Route{Type: r.Type}
	if err := r.onlyFor(key); err != nil {
		return out, err
	}
	switch r.Type {
	case RouteMX:
		return r.validateMX(key)
	case RouteRelay:
		return r.validateRelay(key)
	case RouteLocal:
		return r.validateLocal(key)
	case "":
		return out, fmt.Errorf("%s.type: missing (mx, relay or local)", key)
	}
	return out, fmt.Errorf("%s.type: %q is not mx, relay or local", key, r.Type)
}

// onlyFor refuses keys that belong to another route type.
func (r *rawRoute) onlyFor(key string) error {
	type use struct {
		set   bool
		name  string
		types string
	}
	uses := []use{
		{r.MaxMX != nil, "max-mx", RouteMX}, {r.MaxMultihomed != nil, "max-multihomed", RouteMX},
		{r.IPLookup != "", "ip-lookup", RouteMX},
		{r.Address != "", "address", RouteRelay}, {r.Protocol != "", "protocol", RouteRelay},
		{r.ImplicitTLS, "implicit-tls", RouteRelay}, {r.Auth != nil, "auth", RouteRelay},
		{r.Maildir != "", "maildir", RouteLocal}, {r.LMTP != "", "lmtp", RouteLocal},
		{r.Port != nil, "port", RouteMX + " " + RouteRelay},
	}
	for _, u := range uses {
		if u.set && !strings.Contains(u.types, r.Type) {
			return fmt.Errorf("%s.%s: belongs to %s routes, not %q", key, u.name, strings.ReplaceAll(u.types, " ", " and "), r.Type)
		}
	}
	return nil
}

func (r *rawRoute) validateMX(key string) (Route, error) {
	out := Route{Type: RouteMX, IPLookup: r.IPLookup}
	var err error
	if out.MaxMX, err = intOr(key+".max-mx", r.MaxMX, 5, 1); err != nil {
		return out, err
	}
	if out.MaxMultihomed, err = intOr(key+".max-multihomed", r.MaxMultihomed, 2, 1); err != nil {
		return out, err
	}
	if out.IPLookup == "" {
		out.IPLookup = "ipv4_then_ipv6"
	}
	switch out.IPLookup {
	case "ipv4_only", "ipv6_only", "ipv4_then_ipv6", "ipv6_then_ipv4":
	default:
		return out, fmt.Errorf("%s.ip-lookup: %q is not one of ipv4_only, ipv6_only, ipv4_then_ipv6, ipv6_then_ipv4", key, out.IPLookup)
	}
	out.Port, err = portOr(key+".port", r.Port, 25)
	return out, err
}

func (r *rawRoute) validateRelay(key string) (Route, error) {
	out := Route{Type: RouteRelay, Address: r.Address, Protocol: r.Protocol, ImplicitTLS: r.ImplicitTLS}
	if out.Address == "" {
		return out, fmt.Errorf("%s.address: a relay route needs the relay's host name or IP", key)
	}
	if out.Protocol == "" {
		out.Protocol = "smtp"
	}
	if out.Protocol != "smtp" && out.Protocol != "lmtp" {
		return out, fmt.Errorf("%s.protocol: %q is not smtp or lmtp", key, out.Protocol)
	}
	var err error
	if out.Port, err = portOr(key+".port", r.Port, 25); err != nil {
		return out, err
	}
	if r.Auth != nil {
		out.Auth, err = r.Auth.validate(key + ".auth")
	}
	return out, err
}

func (r *rawRoute) validateLocal(key string) (Route, error) {
	out := Route{Type: RouteLocal, LMTP: r.LMTP}
	if r.LMTP != "" && r.Maildir != "" {
		return out, fmt.Errorf("%s: set maildir or lmtp, not both", key)
	}
	if r.LMTP != "" {
		if _, _, err := net.SplitHostPort(r.LMTP); err != nil {
			return out, fmt.Errorf("%s.lmtp: bad address %q (want host:port)", key, r.LMTP)
		}
		return out, nil
	}
	out.Maildir = r.Maildir
	if out.Maildir == "" {
		out.Maildir = "mail"
	}
	return out, nil
}

func (a *rawAuth) validate(key string) (*Auth, error) {
	if a.Username == "" {
		return nil, fmt.Errorf("%s.username: missing", key)
	}
	set := 0
	for _, v := range []string{a.Secret, a.SecretEnv, a.SecretFile} {
		if v != "" {
			set++
		}
	}
	if set != 1 {
		return nil, fmt.Errorf("%s: set exactly one of secret, secret-env, secret-file", key)
	}
	out := &Auth{Username: a.Username, Secret: a.Secret}
	for i, m := range a.Mechanisms {
		m = strings.ToUpper(m)
		if m != "PLAIN" && m != "LOGIN" {
			return nil, fmt.Errorf("%s.mechanisms[%d]: %q is not PLAIN or LOGIN", key, i, a.Mechanisms[i])
		}
		out.Mechanisms = append(out.Mechanisms, m)
	}
	switch {
	case a.SecretEnv != "":
		v, ok := os.LookupEnv(a.SecretEnv)
		if !ok || v == "" {
			return nil, fmt.Errorf("%s.secret-env: environment variable %s is not set", key, a.SecretEnv)
		}
		out.Secret = v
	case a.SecretFile != "":
		b, err := os.ReadFile(a.SecretFile)
		if err != nil {
			return nil, fmt.Errorf("%s.secret-file: %w", key, err)
		}
		out.Secret = strings.TrimRight(string(b), "\r\n")
		if out.Secret == "" {
			return nil, fmt.Errorf("%s.secret-file: %s is empty", key, a.SecretFile)
		}
	}
	return out, nil
}

func portOr(key string, p *int, def int) (int, error) {
	if p == nil {
		return def, nil
	}
	if *p < 1 || *p > 65535 {
		return 0, fmt.Errorf("%s: %d is not a TCP port", key, *p)
	}
	return *p, nil
}

func (r *rawQueue) validateConnections(c *Config) error {
	c.Queue.Connection = map[string]Connection{}
	if _, ok := r.Connection["default"]; !ok {
		c.Queue.Connection["default"] = Connection{Timeout: defaultTimeouts()}
	}
	for name, rc := range r.Connection {
		out, err := rc.validate("queue.connection." + name)
		if err != nil {
			return err
		}
		c.Queue.Connection[name] = out
	}
	return nil
}

func defaultTimeouts() Timeouts {
	m := time.Minute
	return Timeouts{Connect: 5 * m, Greeting: 5 * m, EHLO: 5 * m, MailFrom: 5 * m, RcptTo: 5 * m, Data: 10 * m}
}

func (r *rawConnection) validate(key string) (Connection, error) {
	out := Connection{EHLOHostname: r.EHLOHostname, Timeout: defaultTimeouts(), NoChunking: r.Chunking != nil && !*r.Chunking}
	for i, s := range r.SourceIPs {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return out, fmt.Errorf("%s.source-ips[%d]: bad IP address %q", key, i, s)
		}
		out.SourceIPs = append(out.SourceIPs, a)
	}
	for ip, name := range r.EHLOHostnames {
		a, err := netip.ParseAddr(ip)
		if err != nil || !contains(out.SourceIPs, a) {
			return out, fmt.Errorf("%s.ehlo-hostnames: %q is not one of source-ips", key, ip)
		}
		if !validDomain(name) {
			return out, fmt.Errorf("%s.ehlo-hostnames.%s: bad host name %q", key, ip, name)
		}
		if out.EHLOHostnames == nil {
			out.EHLOHostnames = map[netip.Addr]string{}
		}
		out.EHLOHostnames[a] = name
	}
	if out.EHLOHostname != "" && !validDomain(out.EHLOHostname) {
		return out, fmt.Errorf("%s.ehlo-hostname: bad host name %q", key, out.EHLOHostname)
	}
	fields := map[string]*time.Duration{
		"connect": &out.Timeout.Connect, "greeting": &out.Timeout.Greeting, "ehlo": &out.Timeout.EHLO,
		"mail-from": &out.Timeout.MailFrom, "rcpt-to": &out.Timeout.RcptTo, "data": &out.Timeout.Data,
	}
	for stage, v := range r.Timeout {
		p, ok := fields[stage]
		if !ok {
			return out, fmt.Errorf("%s.timeout.%s: unknown stage (want connect, greeting, ehlo, mail-from, rcpt-to, data)", key, stage)
		}
		d, err := parseDuration(key+".timeout."+stage, v)
		if err != nil {
			return out, err
		}
		*p = d
	}
	return out, nil
}

func (r *rawQueue) validateStrategy(c *Config) error {
	f := expression.Funcs{LocalDomains: c.Session.LocalDomains}
	type sel struct {
		key     string
		raw     any
		def     any
		dst     **expression.Selector
		defined func(string) bool
		kind    string
	}
	sels := []sel{
		{"queue.strategy.schedule", r.Strategy.Schedule, "'default'", &c.Queue.Strategy.Schedule, has(c.Queue.Schedule), "queue.schedule"},
		{"queue.strategy.route", r.Strategy.Route, defaultRoute, &c.Queue.Strategy.Route, has(c.Queue.Route), "queue.route"},
		{"queue.strategy.connection", r.Strategy.Connection, "'default'", &c.Queue.Strategy.Connection, has(c.Queue.Connection), "queue.connection"},
		{"queue.strategy.tls", r.Strategy.TLS, "'default'", &c.Queue.Strategy.TLS, has(c.Queue.TLS), "queue.tls"},
	}
	for _, s := range sels {
		raw := s.raw
		if raw == nil {
			raw = s.def
		}
		compiled, err := expression.Compile(s.key, raw, f)
		if err != nil {
			return err
		}
		if err := checkNames(compiled, s.defined, s.kind); err != nil {
			return err
		}
		*s.dst = compiled
	}
	return nil
}

// defaultRoute delivers to local domains locally and elsewhere by MX.
var defaultRoute = []any{
	map[string]any{"if": "is_local_domain(rcpt_domain)", "then": "'local'"},
	map[string]any{"else": "'mx'"},
}

func has[T any](m map[string]T) func(string) bool {
	return func(n string) bool { _, ok := m[n]; return ok }
}

func checkNames(s *expression.Selector, defined func(string) bool, kind string) error {
	names := s.Names()
	keys := make([]string, 0, len(names))
	for n := range names {
		keys = append(keys, n)
	}
	sort.Strings(keys)
	for _, n := range keys {
		if !defined(n) {
			return fmt.Errorf("%s: %q names no definition (no [%s.%s])", names[n], n, kind, n)
		}
	}
	return nil
}

func validDomain(d string) bool {
	if d == "" || len(d) > 253 {
		return false
	}
	for _, label := range strings.Split(d, ".") {
		if label == "" || len(label) > 63 || strings.HasPrefix(label, "-") || strings.HasSuffix(label, "-") {
			return false
		}
		for _, r := range label {
			if !(r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r > 127) {
				return false
			}
		}
	}
	return true
}

// SplitHostPort splits a relay address that may carry its own port.
func SplitHostPort(addr string, defPort int) (string, int, error) {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return addr, defPort, nil
	}
	n, err := strconv.Atoi(p)
	if err != nil || n < 1 || n > 65535 {
		return "", 0, fmt.Errorf("bad port in %q", addr)
	}
	return h, n, nil
}

func contains(ips []netip.Addr, a netip.Addr) bool {
	for _, ip := range ips {
		if ip == a {
			return true
		}
	}
	return false
}

func (r *rawWebhooks) validate(c *Config) error {
	names := make([]string, 0, len(r.Endpoint))
	for name := range r.Endpoint {
		names = append(names, name)
	}
	sort.Strings(names)
	var errs []error
	for _, name := range names {
		w, key := r.Endpoint[name], "webhook.endpoint."+name
		ep := webhook.Endpoint{Name: name, URL: w.URL, Events: w.Events, Headers: w.Headers, BatchSize: w.BatchSize}
		for _, d := range []struct {
			field string
			raw   string
			to    *time.Duration
		}{{"flush-interval", w.FlushInterval, &ep.FlushInterval}, {"timeout", w.Timeout, &ep.Timeout},
			{"min-backoff", w.MinBackoff, &ep.MinBackoff}, {"max-backoff", w.MaxBackoff, &ep.MaxBackoff}} {
			if d.raw == "" {
				continue
			}
			v, err := parseDuration(key+"."+d.field, d.raw)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			*d.to = v
		}
		c.Webhooks.Endpoints = append(c.Webhooks.Endpoints, ep)
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	return c.Webhooks.Validate()
}
