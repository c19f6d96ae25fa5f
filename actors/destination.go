package actors

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/mtad/mtad/config"
	"github.com/mtad/mtad/dane"
	"github.com/mtad/mtad/messages"
	"github.com/mtad/mtad/metrics"
	"github.com/mtad/mtad/mtasts"
	"github.com/mtad/mtad/outbound"
	"github.com/mtad/mtad/resolver"
)

// targetsTTL bounds how long a destination keeps its resolved targets.
const targetsTTL = 5 * time.Minute

// destinationActor delivers a queue's jobs to one destination (a recipient
// domain on an mx route, or a relay): it resolves the targets, keeps up to
// the queue's per-destination number of connections, hands each job to a
// connection that says it is ready, and closes connections left idle.
type destinationActor struct {
	deps       *Deps
	queue      string // the virtual queue's name (metric label)
	qcfg       config.VirtualQueue
	key        string
	routeName  string
	route      config.Route
	domain     string
	requireTLS bool // REQUIRETLS messages only: every hop strictly verified

	targets   []hop
	targetsAt time.Time
	resolving bool
	ready     []*messages.Job
	conns     map[string]*connRef // by pid id
	idleGen   uint64
	idleArmed bool
	site      string    // the provider whose MX suffix our MX hosts carry
	limitAt   time.Time // a limit holds work until then
	limitGen  uint64
	holding   string    // "rate", "concurrency" or "suspended" while work is held
	holdUntil time.Time // after a failed dial: no new connection before this
	holdArmed bool      // a wake is set for holdUntil
	stopping  bool      // stopping: no new children
	draining  bool      // the engine drains: no new connection
}

// connRef is the destination's view of one connection actor.
type connRef struct {
	pid       *actor.PID
	host, ip  string        // the server it reached
	localIP   string        // and the source address it used
	slots     []string      // concurrency slots it holds (released when it ends)
	up        bool          // connected
	idle      bool          // said it is ready and has been given nothing since
	job       *messages.Job // in flight
	idleSince time.Time
}

type resolved struct {
	targets []hop
	reply   messages.Reply
	err     error
}

type (
	idleTick  struct{ gen uint64 }
	connGone  struct{ pid *actor.PID }
	wake      struct{}
	limitWake struct{ gen uint64 }
)

// dialHold is how long a destination adds no connection after a dial
// failed while other connections were up: a server that limits
// connections is not hammered.
const dialHold = 10 * time.Second

func newDestination(d *Deps, queue string, qcfg config.VirtualQueue, key, routeName string, route config.Route, domain string) *destinationActor {
	return &destinationActor{deps: d, queue: queue, qcfg: qcfg, key: key, routeName: routeName, route: route, domain: domain,
		requireTLS: strings.HasSuffix(key, requireTLSKey), conns: map[string]*connRef{}}
}

// Receive runs on the destination actor's goroutine.
func (d *destinationActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *messages.Job:
		d.ready = append(d.ready, m)
		d.dispatch(ctx)
	case *resolved:
		d.onResolved(ctx, m)
	case *connUp:
		if c := d.conns[m.pid.Id]; c != nil {
			c.host, c.ip, c.localIP = m.host, m.ip, m.localIP
		}
		d.onConnReady(ctx, m.pid)
	case *connFailed:
		d.onConnFailed(ctx, m)
	case *connDone:
		d.onConnDone(ctx, m)
	case *actor.Terminated:
		d.onTerminated(ctx, m.Who)
	case *connGone:
		d.onConnGone(ctx, m.pid)
	case *connEnded:
		d.onConnEnded(ctx, m.pid)
	case *wake:
		d.holdArmed = false
		d.dispatch(ctx)
	case *limitWake:
		if m.gen == d.limitGen {
			d.limitAt = time.Time{}
			d.dispatch(ctx)
		}
	case *idleTick:
		d.onIdleTick(ctx, m)
	case *returnReady:
		d.draining = true
		for _, j := range d.ready {
			ctx.Send(ctx.Parent(), &notAttempted{job: j})
		}
		clear(d.ready)
		d.ready = d.ready[:0]
	case *actor.Stopping:
		d.stopping = true
		for id := range d.conns {
			d.dropConn(id) // its slots are free again; the actor is going
		}
	}
}

func (d *destinationActor) dispatch(ctx actor.Context) {
	if d.stopping {
		return
	}
	if len(d.ready) == 0 {
		d.checkIdle(ctx)
		return
	}
	if d.targets == nil || (time.Since(d.targetsAt) > targetsTTL && len(d.conns) == 0) {
		d.resolve(ctx)
		return
	}
	now := time.Now()
	if now.Before(d.limitAt) {
		d.hold(ctx, d.limitAt, d.holding) // back to the queue until the limit allows
		return
	}
	suspended, until, connCap := d.shaped(now)
	if suspended {
		d.hold(ctx, until, "suspended")
		return
	}
	dialing := 0
	for _, c := range d.conns {
		switch {
		case !c.up:
			dialing++
		case c.idle && len(d.ready) > 0:
			if !d.give(ctx, c) {
				return
			}
		}
	}
	if d.draining {
		return
	}
	if wait := time.Until(d.holdUntil); wait > 0 {
		if !d.holdArmed {
			d.holdArmed = true
			self, sys := ctx.Self(), ctx.ActorSystem().Root
			time.AfterFunc(wait, func() { sys.Send(self, &wake{}) })
		}
		return
	}
	for len(d.ready) > dialing && len(d.conns) < connCap {
		if !d.spawnConn(ctx) {
			return
		}
		dialing++
	}
}

// give hands the next ready job to an idle connection.
// It reports false when a message rate holds the job back.
func (d *destinationActor) give(ctx actor.Context, c *connRef) bool {
	now := time.Now()
	if now.Before(d.limitAt) {
		return false // held: the connection waits idle
	}
	if suspended, until, _ := d.shaped(now); suspended {
		d.hold(ctx, until, "suspended")
		return false
	}
	if d.limited() && d.ready[0].Source != "dsn" {
		j := d.ready[0]
		ls := applicable(d.deps.Cfg(), limitValues{rcptDomain: d.domain, sender: j.From, mx: c.host, remoteIP: c.ip,
			localIP: c.localIP, queue: j.Queue, site: d.site, source: j.Source})
		if ok, at := sendMessage(d.deps.Limits, ls, time.Now()); !ok {
			d.hold(ctx, at, "rate")
			return false
		}
	}
	d.holding = ""
	c.idle = false
	c.job = d.ready[0]
	d.ready[0] = nil
	d.ready = d.ready[1:]
	ctx.Send(c.pid, c.job)
	return true
}

// limited reports whether outbound limits apply here: remote routes only.
func (d *destinationActor) limited() bool {
	return d.deps.Limits != nil && len(d.deps.Cfg().Queue.Limit) > 0 && d.route.Type != config.RouteLocal
}

// hold keeps the ready work until at, and tells the queue why (the
// recipients' last_error), once per hold.
//
// The ready jobs go back to the queue, which keeps them until at: held
// work must not occupy the queue's concurrency (a throttled domain would
// starve the others) and is not an attempt.
func (d *destinationActor) hold(ctx actor.Context, at time.Time, reason string) {
	metrics.Held.WithLabelValues(reason).Inc()
	metrics.HeldSeconds.WithLabelValues(reason).Add(max(0, time.Until(at).Seconds()))
	d.limitAt = at
	d.limitGen++
	gen, self, sys := d.limitGen, ctx.Self(), ctx.ActorSystem().Root
	time.AfterFunc(time.Until(at), func() { sys.Send(self, &limitWake{gen: gen}) })
	d.holding = reason
	if len(d.ready) > 0 {
		ctx.Send(ctx.Parent(), &held{jobs: append([]*messages.Job(nil), d.ready...), reason: reason, until: at})
		clear(d.ready)
		d.ready = d.ready[:0]
	}
}

// spawnConn opens a connection; false when a limit holds it back.
func (d *destinationActor) spawnConn(ctx actor.Context) bool {
	targets := d.targets
	dc := dialContext{requireTLS: d.requireTLS}
	var sender, queue string
	for _, j := range d.ready { // the most retried job decides: a relaxed retry must get its relaxed plan
		if j.Attempt-1 >= dc.retryNum {
			dc.retryNum, dc.lastError = j.Attempt-1, j.LastError
			sender, queue = j.From, j.Queue
		}
	}
	var slots []string
	maxMsgs := 0
	if d.limited() && len(targets) > 0 && !onlyDSNs(d.ready) {
		first := targets[0].Target
		if cs := connStrategy(d.deps, d.domain, first); len(cs.SourceIPs) > 0 {
			dc.sourceIP = sourceIP(cs.SourceIPs, first.Addr.Addr())
		}
		local := ""
		if dc.sourceIP.IsValid() {
			local = dc.sourceIP.String()
		}
		ls := applicable(d.deps.Cfg(), limitValues{rcptDomain: d.domain, sender: sender, mx: first.Host,
			remoteIP: ipOf(first), localIP: local, queue: queue, site: d.site})
		ok, at, reason, held, m := openConn(d.deps.Limits, ls, time.Now())
		if !ok {
			d.hold(ctx, at, reason)
			return false
		}
		slots, maxMsgs = held, m
	}
	props := d.deps.props(func() actor.Actor {
		return newConnection(d.deps, d.qcfg, d.route, d.domain, targets, dc, maxMsgs)
	}, actor.WithSupervisor(actor.NewOneForOneStrategy(0, 0, stopDecider)))
	pid := ctx.Spawn(props)
	d.conns[pid.Id] = &connRef{pid: pid, slots: slots}
	metrics.Connections.WithLabelValues(d.queue).Inc()
	return true
}

// onlyDSNs reports whether every job is a DSN: limits do not hold DSNs.
func onlyDSNs(jobs []*messages.Job) bool {
	for _, j := range jobs {
		if j.Source != "dsn" {
			return false
		}
	}
	return true
}

// dropConn forgets a connection and frees its concurrency slots.
func (d *destinationActor) dropConn(id string) {
	c := d.conns[id]
	if c == nil {
		return
	}
	if d.deps.Limits != nil {
		releaseAll(d.deps.Limits, c.slots)
	}
	metrics.Connections.WithLabelValues(d.queue).Dec()
	delete(d.conns, id)
}

// resolve looks up the destination's targets off the mailbox.
func (d *destinationActor) resolve(ctx actor.Context) {
	if d.resolving {
		return
	}
	d.resolving = true
	self, sys := ctx.Self(), ctx.ActorSystem().Root
	deps, route, domain := d.deps, d.route, d.domain
	timeout := d.deps.Cfg().Resolver.Timeout * time.Duration(2*d.deps.Cfg().Resolver.Attempts+2)
	go func() {
		c, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		t, err := resolveTargets(c, deps, route, domain)
		m := &resolved{targets: t}
		if err != nil {
			m.err, m.reply = err, dnsReply(err)
		}
		sys.Send(self, m)
	}()
}

func (d *destinationActor) onResolved(ctx actor.Context, m *resolved) {
	d.resolving = false
	if m.err != nil {
		d.deps.Logger.Info("destination unresolved", "domain", d.domain, "route", d.routeName, "err", m.err)
		d.failReady(ctx, m.reply, "", "")
		d.checkIdle(ctx)
		return
	}
	d.targets, d.targetsAt = m.targets, time.Now()
	hosts := make([]string, len(m.targets))
	for i, h := range m.targets {
		hosts[i] = h.Host
	}
	d.site = siteOf(d.deps.Cfg(), hosts)
	d.dispatch(ctx)
}

// failReady reports every ready job back with reply.
func (d *destinationActor) failReady(ctx actor.Context, reply messages.Reply, host, ip string) {
	for _, j := range d.ready {
		ctx.Send(ctx.Parent(), failedResult(j, reply, host, ip))
	}
	clear(d.ready)
	d.ready = d.ready[:0]
}

func failedResult(j *messages.Job, reply messages.Reply, host, ip string) *messages.JobResult {
	rs := make([]messages.Reply, len(j.Rcpts))
	for i := range rs {
		rs[i] = reply
	}
	return &messages.JobResult{Job: j, Replies: rs, Host: host, IP: ip}
}

func (d *destinationActor) onConnReady(ctx actor.Context, pid *actor.PID) {
	c := d.conns[pid.Id]
	if c == nil {
		return
	}
	c.up, c.idle, c.idleSince = true, true, time.Now()
	if len(d.ready) > 0 && d.give(ctx, c) {
		return
	}
	d.armIdle(ctx)
	d.checkIdle(ctx)
}

// onConnFailed: a connection could reach no target. If no other connection
// is up, the ready jobs fail temporarily (or permanently when every target
// refused for good) and the queue's schedule retries them.
func (d *destinationActor) onConnFailed(ctx actor.Context, m *connFailed) {
	d.dropConn(m.pid.Id)
	ctx.Stop(m.pid)
	if rule := d.firstRule(m.reply); rule != nil {
		if rule.Action == config.ShapeFail {
			m.reply = failedBy(rule, m.reply)
		}
		d.act(ctx, rule, m.reply, "")
		if suspended, until, _ := d.shaped(time.Now()); suspended {
			d.hold(ctx, until, "suspended") // the ready work waits it out: no attempt is spent
			return
		}
	}
	up, dialing := 0, 0
	for _, c := range d.conns {
		if c.up {
			up++
		} else {
			dialing++
		}
	}
	switch {
	case up > 0:
		d.holdUntil = time.Now().Add(dialHold)
		d.dispatch(ctx)
	case dialing == 0:
		d.targets = nil // resolve again on the next attempt
		d.failReady(ctx, m.reply, "", "")
		d.checkIdle(ctx)
	}
}

func (d *destinationActor) onConnDone(ctx actor.Context, m *connDone) {
	c := d.conns[m.pid.Id]
	if c == nil {
		return // reported already, as lost with a crashed connection
	}
	if c.job != nil && c.job.Seq == m.result.Job.Seq {
		c.job = nil
	}
	d.shapeResult(ctx, m.result)
	ctx.Send(ctx.Parent(), m.result)
	if m.closing {
		c.idle = false // it says QUIT now; connEnded frees its place
	}
}

// onConnEnded forgets a connection whose session has closed.
func (d *destinationActor) onConnEnded(ctx actor.Context, pid *actor.PID) {
	if d.conns[pid.Id] == nil {
		return
	}
	d.dropConn(pid.Id)
	ctx.Stop(pid)
	d.dispatch(ctx)
}

// onTerminated: a connection actor the destination did not stop has
// crashed. It gets no more work; what it reported before it died is still
// in the mailbox (Terminated overtakes it), so the rest waits for connGone.
func (d *destinationActor) onTerminated(ctx actor.Context, who *actor.PID) {
	c := d.conns[who.Id]
	if c == nil || d.stopping {
		return
	}
	c.idle = false
	ctx.Send(ctx.Self(), &connGone{pid: who})
}

// onConnGone reports the crashed connection's job, if it had one, as a
// temporary failure.
func (d *destinationActor) onConnGone(ctx actor.Context, who *actor.PID) {
	c := d.conns[who.Id]
	if c == nil {
		return
	}
	d.dropConn(who.Id)
	if c.job != nil {
		ctx.Send(ctx.Parent(), failedResult(c.job, messages.Reply{Text: "connection lost before the transaction ended", Class: "connection"}, "", ""))
	}
	d.dispatch(ctx)
}

// armIdle sets a timer for when the longest-idle connection reaches the
// idle timeout.
func (d *destinationActor) armIdle(ctx actor.Context) {
	if d.idleArmed || d.stopping {
		return
	}
	var oldest time.Time
	for _, c := range d.conns {
		if c.idle && (oldest.IsZero() || c.idleSince.Before(oldest)) {
			oldest = c.idleSince
		}
	}
	if oldest.IsZero() {
		return
	}
	d.idleArmed = true
	d.idleGen++
	gen, self, sys := d.idleGen, ctx.Self(), ctx.ActorSystem().Root
	time.AfterFunc(time.Until(oldest.Add(d.qcfg.IdleTimeout)), func() { sys.Send(self, &idleTick{gen: gen}) })
}

// onIdleTick closes connections idle for the idle timeout.
func (d *destinationActor) onIdleTick(ctx actor.Context, t *idleTick) {
	if t.gen != d.idleGen {
		return
	}
	d.idleArmed = false
	idle := 0
	for _, c := range d.conns {
		if !c.idle {
			continue
		}
		if time.Since(c.idleSince) >= d.qcfg.IdleTimeout {
			c.idle = false // closing: connEnded frees its place
			ctx.Send(c.pid, &connClose{})
			continue
		}
		idle++
	}
	if idle > 0 {
		d.armIdle(ctx)
	}
	d.checkIdle(ctx)
}

// checkIdle tells the queue when nothing is left here; the queue stops
// this actor if it has sent nothing since.
func (d *destinationActor) checkIdle(ctx actor.Context) {
	if len(d.ready) == 0 && len(d.conns) == 0 && !d.resolving {
		ctx.Send(ctx.Parent(), &messages.DestinationIdle{Dest: d.key})
	}
}

// resolveTargets turns a route into the ordered list of hops to try, each
// with its TLS plan (see tls.go). It runs in the resolve goroutine.
func resolveTargets(ctx context.Context, d *Deps, route config.Route, domain string) ([]hop, error) {
	res := d.Resolver
	switch {
	case route.Type == config.RouteLocal && route.LMTP == "":
		return []hop{{Target: outbound.Target{Host: "maildir"}, facts: localFacts}}, nil
	case route.Type == config.RouteLocal:
		return hostHops(ctx, res, route.LMTP, 24, localFacts)
	case route.Type == config.RouteRelay:
		return hostHops(ctx, res, route.Address, route.Port, &hopFacts{routeType: config.RouteRelay})
	}
	mxr, err := res.LookupMXFull(ctx, domain)
	if err != nil {
		return nil, err
	}
	sts, stsErr := fetchSTS(ctx, d, mxr.Records, domain)
	order, _ := resolver.ParseIPOrder(route.IPLookup)
	var out []hop
	var firstErr error
	for i, mx := range mxr.Records {
		if i >= route.MaxMX {
			break
		}
		ips, err := res.LookupIP(ctx, mx.Host, order)
		if err != nil {
			firstErr = preferTemporary(firstErr, err)
			continue
		}
		f := &hopFacts{routeType: config.RouteMX, sts: sts, stsErr: stsErr}
		if anyTLS(d.Cfg(), func(s config.TLSStrategy) bool { return s.DANE != config.TLSDisable }) {
			f.dane, f.daneErr = dane.Lookup(ctx, res, mx.Host, route.Port, mxr.Authenticated)
		}
		out = append(out, hopsFor(mx.Host, ips, route.Port, route.MaxMultihomed, f)...)
	}
	if len(out) == 0 {
		return nil, firstErr
	}
	return out, nil
}

// fetchSTS gets the domain's MTA-STS policy when the TLS strategy of any of
// its MX hosts wants it.
func fetchSTS(ctx context.Context, d *Deps, mxs []resolver.MX, domain string) (*mtasts.Policy, error) {
	if d.MTASTS == nil {
		return nil, nil
	}
	if anyTLS(d.Cfg(), func(s config.TLSStrategy) bool { return s.MTASTS != config.TLSDisable }) {
		return d.MTASTS.Get(ctx, domain)
	}
	return nil, nil
}

// anyTLS reports whether some TLS strategy wants a kind of fact: facts are
// gathered when the destination resolves, but the strategy is chosen when a
// connection dials, with the job's retry_num and last_error.
func anyTLS(cfg *config.Config, want func(config.TLSStrategy) bool) bool {
	for _, s := range cfg.Queue.TLS {
		if want(s) {
			return true
		}
	}
	return false
}

// hostHops resolves a relay or LMTP server given as host or host:port.
func hostHops(ctx context.Context, res Resolver, addr string, defPort int, f *hopFacts) ([]hop, error) {
	host, port, err := config.SplitHostPort(addr, defPort)
	if err != nil {
		return nil, err
	}
	ips, err := res.LookupIP(ctx, host, resolver.IPv4ThenIPv6)
	if err != nil {
		return nil, err
	}
	return hopsFor(host, ips, port, len(ips), f), nil
}

// localFacts: local delivery (LMTP on a trusted network) is not encrypted.
var localFacts = &hopFacts{routeType: config.RouteLocal, fixed: &tlsPlan{starttls: outbound.TLSDisable}}

func hopsFor(host string, ips []netip.Addr, port, max int, f *hopFacts) []hop {
	var out []hop
	for i, ip := range ips {
		if i >= max {
			break
		}
		out = append(out, hop{Target: outbound.Target{Host: host, Addr: netip.AddrPortFrom(ip, uint16(port))}, facts: f})
	}
	return out
}

// preferTemporary keeps a temporary error over a permanent one: if any MX
// host failed only for now, the domain is not undeliverable.
func preferTemporary(have, next error) error {
	if have == nil {
		return next
	}
	var re *resolver.Error
	if errors.As(have, &re) && !re.Temporary {
		return next
	}
	return have
}

// dnsReply turns a resolution failure into the reply recorded for the
// recipients. Its text may reach the sender in a DSN, so it names the
// domain and the kind of failure, never our resolver's address.
func dnsReply(err error) messages.Reply {
	var re *resolver.Error
	if !errors.As(err, &re) {
		return messages.Reply{Text: "address lookup failed", Class: "dns"}
	}
	kind := "DNS lookup failed, will retry"
	for _, k := range []struct {
		err  error
		text string
	}{
		{resolver.ErrNullMX, "the domain accepts no mail (null MX)"},
		{resolver.ErrNoSuchDomain, "the domain does not exist"},
		{resolver.ErrNoAddress, "the mail server has no address"},
		{resolver.ErrInvalidName, "invalid domain name"},
		{resolver.ErrServerFailure, "DNS server failure, will retry"},
	} {
		if errors.Is(err, k.err) {
			kind = k.text
			break
		}
	}
	return messages.Reply{Code: re.Code, Enhanced: re.Enhanced, Text: "lookup " + re.Name + ": " + kind, Class: "dns"}
}
