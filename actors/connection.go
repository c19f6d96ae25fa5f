package actors

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/mtad/mtad/config"
	"github.com/mtad/mtad/expression"
	"github.com/mtad/mtad/messages"
	"github.com/mtad/mtad/outbound"
	"github.com/mtad/mtad/persistence"
	"github.com/mtad/mtad/tlsrpt"
)

// connectionActor is one outbound SMTP/LMTP session: it connects, then
// delivers the jobs its destination gives it one after another, and says
// QUIT when told to close or when it has carried its share of messages.
// Network I/O runs in goroutines whose results come back as messages, so a
// stop is always heard; stopping cancels the I/O in progress.
//
// A connection never stops itself: it reports its end (connFailed, or
// connDone with closing set) and its destination stops it. Terminated is a
// system message and overtakes user messages in the destination's mailbox,
// so a Terminated for a connection the destination still lists means a
// crash, never a result still on its way.
type connectionActor struct {
	deps    *Deps
	qcfg    config.VirtualQueue
	route   config.Route
	domain  string
	targets []hop
	dc      dialContext
	maxMsgs int    // messages before the session is recycled
	host    string // the server it reached
	ip      string
	localIP string

	ctx    context.Context // cancelled when the actor stops
	cancel context.CancelFunc
	box    *sessionBox
	busy   bool
	count  int
}

// sessionBox hands the SMTP session between the actor and its I/O
// goroutines so that it is closed exactly once, even when the actor stops
// while a goroutine holds it (its result then goes to dead letters).
type sessionBox struct {
	mu      sync.Mutex
	conn    session // nil while a goroutine holds it
	stopped bool
}

// put returns the session after I/O; if the actor stopped meanwhile, the
// session is closed instead.
func (b *sessionBox) put(conn session) {
	b.mu.Lock()
	stopped := b.stopped
	if !stopped {
		b.conn = conn
	}
	b.mu.Unlock()
	if stopped && conn != nil {
		_ = conn.Close()
	}
}

// take hands the session out for I/O or closing; nil if there is none.
func (b *sessionBox) take() session {
	b.mu.Lock()
	defer b.mu.Unlock()
	c := b.conn
	b.conn = nil
	return c
}

// stop marks the actor gone and returns the session if it is not out.
func (b *sessionBox) stop() session {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.stopped = true
	c := b.conn
	b.conn = nil
	return c
}

// Messages between a connection and its destination.
type (
	connUp struct {
		pid               *actor.PID
		host, ip, localIP string // the server it is connected to, and from where
	}
	connFailed struct {
		pid   *actor.PID
		reply messages.Reply
	}
	connDone struct {
		pid     *actor.PID
		result  *messages.JobResult
		closing bool // the session is over; the destination stops the actor
	}
	connClose struct{}
	// connEnded: the session is closed (QUIT answered or timed out); the
	// destination counted it until now, so a cap holds at the server too.
	connEnded struct{ pid *actor.PID }
	quitDone  struct{}
	dialed    struct {
		ok                bool
		reply             messages.Reply
		host, ip, localIP string
	}
	delivered struct {
		result *messages.JobResult
		alive  bool
	}
)

func newConnection(d *Deps, qcfg config.VirtualQueue, route config.Route, domain string, targets []hop, dc dialContext, maxMsgs int) *connectionActor {
	if maxMsgs <= 0 || maxMsgs > qcfg.MessagesPerConnection {
		maxMsgs = qcfg.MessagesPerConnection
	}
	return &connectionActor{deps: d, qcfg: qcfg, route: route, domain: domain, targets: targets, dc: dc, maxMsgs: maxMsgs}
}

// Receive runs on the connection actor's goroutine.
func (c *connectionActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		c.ctx, c.cancel = context.WithCancel(context.Background())
		c.box = &sessionBox{}
		c.dial(ctx)
	case *dialed:
		c.onDialed(ctx, m)
	case *messages.Job:
		c.deliver(ctx, m)
	case *delivered:
		c.onDelivered(ctx, m)
	case *connClose:
		c.closeThenReport(ctx)
	case *quitDone:
		ctx.Send(ctx.Parent(), &connEnded{pid: ctx.Self()})
	case *actor.Stopping:
		c.cancel()
		if conn := c.box.stop(); conn != nil {
			go func() { _ = conn.Close() }()
		}
	}
}

func (c *connectionActor) dial(ctx actor.Context) {
	c.busy = true
	self, sys := ctx.Self(), ctx.ActorSystem().Root
	cctx, targets, box := c.ctx, c.targets, c.box
	deps, route, domain, dc := c.deps, c.route, c.domain, c.dc
	go func() {
		var conn session
		var reply messages.Reply
		if route.Type == config.RouteLocal && route.LMTP == "" {
			conn = newMaildirSession(deps, deps.Cfg().MaildirPath(route))
		} else if oc, r := dialTargets(cctx, deps, route, domain, targets, dc); oc != nil {
			conn = netSession{oc}
		} else {
			reply = r
		}
		box.put(conn)
		d := &dialed{ok: conn != nil, reply: reply}
		if conn != nil {
			d.host, d.ip = conn.Target().Host, ipOf(conn.Target())
			if oc, ok := conn.(netSession); ok && oc.LocalAddr().IsValid() {
				d.localIP = oc.LocalAddr().Addr().String()
			}
		}
		sys.Send(self, d)
	}()
}

// dialTargets tries each hop with the options its connection strategy and
// TLS plan give, and returns the first session or a reply describing every
// failure: permanent only if every hop failed permanently. Each MX session
// attempt is recorded for TLS reporting.
func dialTargets(ctx context.Context, d *Deps, route config.Route, domain string, hops []hop, dc dialContext) (*outbound.Conn, messages.Reply) {
	var texts []string
	permanent := len(hops) > 0
	last := messages.Reply{Text: "no targets", Class: "connection"}
	secClass := "" // a TLS or DANE failure on any hop is what a strategy's last_error must see
	for _, h := range hops {
		conn, reply, err := dialHop(ctx, d, route, domain, h, h.plan(d.Cfg(), domain, dc), dc)
		if conn != nil {
			return conn, messages.Reply{}
		}
		last = reply
		if last.Temporary() {
			permanent = false
		}
		if reply.Class == "tls" || reply.Class == "dane" || reply.Class == "mta-sts" {
			secClass = reply.Class
		}
		if err != nil {
			texts = append(texts, err.Error())
		} else {
			texts = append(texts, h.Host+": "+reply.Text)
		}
		if ctx.Err() != nil {
			break
		}
	}
	if len(texts) > 1 {
		last.Text = strings.Join(texts, "; ")
	}
	if !permanent && !last.Temporary() {
		last.Code, last.Enhanced = 451, "4.4.1"
	}
	if secClass != "" {
		last.Class = secClass
	}
	return nil, last
}

// dialHop opens one session, unless the hop's TLS plan forbids it.
func dialHop(ctx context.Context, d *Deps, route config.Route, domain string, h hop, plan *tlsPlan, dc dialContext) (*outbound.Conn, messages.Reply, error) {
	if plan.fail != nil {
		d.recordTLS(route, domain, h, plan, false, plan.failReason, plan.fail.Text)
		return nil, *plan.fail, nil
	}
	opts := connOptions(d, route, domain, h.Target, dc.sourceIP)
	plan.options(&opts, d.RootCAs, h.Host, domain)
	conn, err := outbound.Dial(ctx, []outbound.Target{h.Target}, opts)
	if err == nil {
		_, secure := conn.TLS()
		switch {
		case plan.sts != nil && !plan.stsEnforce && !plan.sts.Matches(h.Host):
			d.recordTLS(route, domain, h, plan, false, "validation-failure", "MX host not listed in the MTA-STS policy (testing mode)")
		case secure:
			d.recordTLS(route, domain, h, plan, true, "", "")
		case plan.starttls != outbound.TLSDisable:
			d.recordTLS(route, domain, h, plan, false, "starttls-not-supported", "the server did not offer STARTTLS")
		}
		return conn, messages.Reply{}, nil
	}
	var oe *outbound.Error
	if errors.As(err, &oe) && (oe.Stage == outbound.StageSTARTTLS || oe.Class == "tls" || oe.Class == "dane") {
		d.recordTLS(route, domain, h, plan, false, reportReason(err), oe.Message)
	}
	reply := errReply(err)
	if plan.requireTLS && errors.Is(err, outbound.ErrTLSNotOffered) {
		// RFC 8689 section 5: the message cannot be relayed as asked.
		reply = messages.Reply{Code: 550, Enhanced: "5.7.30", Text: "REQUIRETLS support required: " + h.Host + " does not offer STARTTLS", Class: "tls"}
	}
	return nil, reply, err
}

// recordTLS notes one session attempt to an MX host for TLS reports.
func (d *Deps) recordTLS(route config.Route, domain string, h hop, plan *tlsPlan, ok bool, reason, detail string) {
	if d.TLSReports == nil || route.Type != config.RouteMX {
		return
	}
	typ, strs := plan.policy()
	d.TLSReports.Record(tlsrpt.Result{Domain: domain, PolicyType: tlsrpt.PolicyType(typ), PolicyStrings: strs,
		MXHost: h.Host, ReceivingIP: ipOf(h.Target), Success: ok, ResultType: reason, FailureReason: detail}, time.Now())
}

// connOptions evaluates the connection strategy for one remote address.
// It reads only immutable values, on the dial goroutine.
func connOptions(deps *Deps, route config.Route, domain string, t outbound.Target, preferred netip.Addr) outbound.Options {
	cfg := deps.Cfg()
	cs := connStrategy(deps, domain, t)
	src := sourceIP(cs.SourceIPs, t.Addr.Addr())
	if preferred.IsValid() && slices.Contains(cs.SourceIPs, preferred) && preferred.Is4() == t.Addr.Addr().Unmap().Is4() {
		src = preferred // the one the destination's limits were checked with
	}
	host := cs.EHLOHostnames[src]
	if host == "" {
		host = cs.EHLOHostname
	}
	if host == "" {
		host = cfg.Server.Hostname
	}
	var auth *outbound.Auth
	if route.Auth != nil {
		auth = &outbound.Auth{Username: route.Auth.Username, Password: route.Auth.Secret, Mechanisms: route.Auth.Mechanisms}
	}
	to := cs.Timeout
	return outbound.Options{
		Hostname:    host,
		Auth:        auth,
		LocalAddr:   src,
		Timeouts:    outbound.Timeouts{Connect: to.Connect, Greeting: to.Greeting, EHLO: to.EHLO, MailFrom: to.MailFrom, RcptTo: to.RcptTo, Data: to.Data},
		LMTP:        route.Protocol == "lmtp" || route.Type == config.RouteLocal,
		ImplicitTLS: route.ImplicitTLS,
		NoChunking:  cs.NoChunking,
	}
}

// connStrategy evaluates the connection strategy for one remote address.
func connStrategy(deps *Deps, domain string, t outbound.Target) config.Connection {
	cfg := deps.Cfg()
	env := expression.Env{RcptDomain: domain, MX: t.Host, RemoteIP: ipOf(t)}
	name, err := cfg.Queue.Strategy.Connection.Eval(&env)
	cs, ok := cfg.Queue.Connection[name]
	if err != nil || !ok {
		deps.Logger.Error("connection strategy failed; using connection default", "domain", domain, "mx", t.Host, "err", err, "connection", name)
		cs = cfg.Queue.Connection["default"]
	}
	return cs
}

// sourceIP picks one of the configured source addresses of the remote's
// family, rotating at random; the zero Addr lets the system choose.
func sourceIP(ips []netip.Addr, remote netip.Addr) netip.Addr {
	var same []netip.Addr
	for _, ip := range ips {
		if ip.Is4() == remote.Unmap().Is4() {
			same = append(same, ip)
		}
	}
	if len(same) == 0 {
		return netip.Addr{}
	}
	return same[rand.IntN(len(same))]
}

func (c *connectionActor) onDialed(ctx actor.Context, m *dialed) {
	c.busy = false
	if !m.ok {
		ctx.Send(ctx.Parent(), &connFailed{pid: ctx.Self(), reply: m.reply})
		return // the destination stops this actor when it has read connFailed
	}
	c.host, c.ip, c.localIP = m.host, m.ip, m.localIP
	ctx.Send(ctx.Parent(), &connUp{pid: ctx.Self(), host: c.host, ip: c.ip, localIP: c.localIP})
}

func (c *connectionActor) deliver(ctx actor.Context, j *messages.Job) {
	var conn session
	if !c.busy {
		conn = c.box.take()
	}
	if conn == nil {
		// The destination gives work only after connUp; this is a bug,
		// and the job goes back as a temporary failure.
		c.deps.Logger.Error("connection given a job while not ready", "msgid", j.MsgID.String(), "busy", c.busy)
		res := failedResult(j, messages.Reply{Text: "connection not ready", Class: "connection"}, "", "")
		ctx.Send(ctx.Parent(), &connDone{pid: ctx.Self(), result: res})
		return
	}
	c.busy = true
	self, sys := ctx.Self(), ctx.ActorSystem().Root
	cctx, journal, box, final := c.ctx, c.deps.Journal, c.box, c.route.Type == config.RouteLocal
	c.deps.workers.Go(func() {
		replies := deliverJob(cctx, conn, journal, j, final)
		t := conn.Target()
		res := &messages.JobResult{Job: j, Replies: replies, Host: t.Host, IP: ipOf(t)}
		res.RemoteDSN = conn.Offers("DSN")
		res.Local = conn.Local()
		alive := conn.Alive()
		box.put(conn)
		sys.Send(self, &delivered{result: res, alive: alive})
	})
}

// deliverJob runs one transaction; it always returns one reply per
// recipient. The body streams from the journal as DATA is sent (or the
// Maildir copy written) and is closed after; a journal read failure in the
// middle fails the transaction with a temporary reply of class "journal",
// the message unfinished (see outbound.Deliver and maildir.Store.Deliver).
// final says the route is local delivery: REQUIRETLS (RFC 8689) governs
// relaying, not the hand-off into the mailbox.
func deliverJob(ctx context.Context, conn session, j bodyOpener, job *messages.Job, final bool) []messages.Reply {
	body, err := j.OpenBody(job.MsgID)
	if err != nil {
		return failedResult(job, messages.Reply{Text: fmt.Sprintf("reading the message from the journal: %v", err), Class: "journal"}, "", "").Replies
	}
	defer body.Close()
	tx := outbound.Tx{From: job.From, Body: body, Size: body.Size(), BodyType: job.Body,
		SMTPUTF8: job.SMTPUTF8, Ret: job.Ret, EnvID: job.EnvID, RequireTLS: job.RequireTLS && !final}
	for _, r := range job.Rcpts {
		tx.Rcpts = append(tx.Rcpts, outbound.Rcpt{Addr: r.Addr, Notify: r.Notify, ORcpt: r.ORcpt})
	}
	replies, err := conn.Deliver(ctx, tx)
	if len(replies) != len(job.Rcpts) {
		reply := messages.Reply{Text: "delivery failed", Class: "connection"}
		if err != nil {
			reply = errReply(err)
		}
		return failedResult(job, reply, "", "").Replies
	}
	return replies
}

// bodySource is what the engine needs of the journal's bodies: the first
// bytes (BodyPrefix), for a DSN that returns the message; OpenBody, a
// stream, for delivery.
type bodySource interface {
	BodyPrefix(id messages.MsgID, n int64) ([]byte, error)
	bodyOpener
}

type bodyOpener interface {
	OpenBody(id messages.MsgID) (*persistence.BodyReader, error)
}

func (c *connectionActor) onDelivered(ctx actor.Context, m *delivered) {
	c.busy = false
	c.count++
	more := m.alive && c.count < c.maxMsgs && c.ctx.Err() == nil
	ctx.Send(ctx.Parent(), &connDone{pid: ctx.Self(), result: m.result, closing: !more})
	if more {
		ctx.Send(ctx.Parent(), &connUp{pid: ctx.Self(), host: c.host, ip: c.ip, localIP: c.localIP})
		return
	}
	// The destination stops this actor once the session has ended: a
	// Terminated (a system message, read first) must not overtake connDone.
	c.closeThenReport(ctx)
}

// closeThenReport says QUIT off the mailbox and reports connEnded when the
// session is closed.
func (c *connectionActor) closeThenReport(ctx actor.Context) {
	conn := c.box.take()
	if conn == nil {
		ctx.Send(ctx.Parent(), &connEnded{pid: ctx.Self()})
		return
	}
	self, sys := ctx.Self(), ctx.ActorSystem().Root
	go func() {
		_ = conn.Close() // bounded by the QUIT timeout
		sys.Send(self, &quitDone{})
	}()
}

// close says QUIT off the mailbox; the session is not used again.
func (c *connectionActor) close() {
	if conn := c.box.take(); conn != nil {
		go func() { _ = conn.Close() }()
	}
}

func errReply(err error) messages.Reply {
	var oe *outbound.Error
	if errors.As(err, &oe) {
		return oe.Reply()
	}
	return messages.Reply{Text: err.Error(), Class: "connection"}
}
