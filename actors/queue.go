package actors

import (
	"errors"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mtad/mtad/config"
	"github.com/mtad/mtad/deliverylog"
	"github.com/mtad/mtad/dsn"
	"github.com/mtad/mtad/messages"
	"github.com/mtad/mtad/metrics"
	"github.com/mtad/mtad/persistence"
)

// queueActor owns one virtual queue: the recipients placed in it, when each
// is due, the jobs in flight and the queue's concurrency budget.
type queueActor struct {
	deps *Deps
	name string
	cfg  config.VirtualQueue

	msgs       map[messages.MsgID]*qmsg
	due        dueHeap // loaded messages' next events
	parkedDue  dueHeap // parked messages' next events
	timer      *time.Timer
	timerAt    time.Time
	timerGen   uint64
	dests      map[string]*destRef
	byPID      map[string]string // destination pid id -> key
	readyDests []*destRef
	inFlight   int // jobs sent to destinations, no result yet
	persisting int // journal writes in flight
	loaded     int // messages whose envelope is in memory (not parked)
	gMsgs      prometheus.Gauge
	gLoaded    prometheus.Gauge
	seq        uint64

	// While a restarted queue reloads from the journal, and for a while
	// after, the messages it finished are remembered: the replay reads an
	// older snapshot, and a live enqueue may come after the replay's copy
	// was delivered. Neither may bring a finished message back.
	reloading bool
	finished  map[messages.MsgID]bool

	stopping  bool                               // restarting or stopping: no new children
	suspended bool                               // the operator stopped deliveries (mail stays queued)
	susp      map[string]bool                    // suspended domains (see suspendedBy)
	suspHeld  map[string]map[messages.MsgID]bool // messages each suspension holds back
	draining  bool                               // no new job starts
	drainDone chan struct{}                      // closed when draining and nothing is in flight
}

// qmsg is a message as its queue holds it. A message waiting for a time
// at least parkAfter away, or beyond the queue's maxLoaded, is parked: env
// and busy are nil, the journal holds its state, and the due heap still
// has its time. What a parked message costs is this struct, its map entry
// and its heap entry, so a queue can hold a million of them.
type qmsg struct {
	env       *messages.Envelope // nil while parked
	id        messages.MsgID
	arrival   int64    // unix seconds, for the oldest-message gauge
	mine      []uint32 // recipient indices this queue owns
	shared    bool
	busy      []bool    // by recipient index: in a job or being journaled
	scheduled time.Time // due time of this message's heap entry; zero if none
	writing   bool      // a journal write of this message is in flight
	unsynced  bool      // a journal write failed: memory is ahead of the journal, so it never parks
	retry     bool      // parked when the operator asked for a retry now
	waiting   []*persisted
}

// Parking bounds. A message whose next event (attempt, delayed DSN,
// expiry) is at least parkAfter away gives its envelope back to the
// journal. At most maxLoaded messages of a queue have their envelope in
// memory: more due work waits, parked, in due order, until loaded ones
// finish or park (as Postfix's active queue limit does).
const (
	parkAfter = 10 * time.Second
	maxLoaded = 20000
)

// destRef is the queue's view of one destination actor.
type destRef struct {
	key         string
	route       string
	domain      string
	pid         *actor.PID
	ready       []*messages.Job
	outstanding map[uint64]sent
	credit      int  // jobs it may hold: grows while it delivers, back to 2 when it cannot connect
	retired     bool // a reload replaces its actor once its jobs in flight report
	listed      bool // in readyDests
}

// sent is a job handed to a destination actor.
type sent struct {
	job *messages.Job
	pid *actor.PID
}

// Messages a queue actor sends itself. owner tells this incarnation's
// messages from those of an incarnation that crashed.
type (
	tick struct {
		owner *queueActor
		gen   uint64
	}
	destGone     struct{ pid *actor.PID }
	notAttempted struct{ job *messages.Job }
	returnReady  struct{}
	forget       struct{ owner *queueActor }
	gaugeTick    struct{ owner *queueActor }
)

// gaugeEvery is how often a queue publishes its oldest message's age.
const gaugeEvery = 10 * time.Second

// forgetAfter is how long after a reload finished messages are remembered.
const forgetAfter = time.Minute

func newQueue(d *Deps, name string, cfg config.VirtualQueue, restart bool) *queueActor {
	q := &queueActor{deps: d, name: name, cfg: cfg, reloading: restart,
		msgs: map[messages.MsgID]*qmsg{}, dests: map[string]*destRef{}, byPID: map[string]string{}}
	if restart {
		q.finished = map[messages.MsgID]bool{}
	}
	d.susp.apply(q)
	return q
}

// Receive runs on the queue actor's goroutine.
func (q *queueActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		q.oldestGauge()
		q.armGauge(ctx)
		if q.reloading {
			q.deps.Logger.Warn("queue actor (re)started; reloading from the journal", "queue", q.name)
			ctx.Send(ctx.Parent(), &reload{queue: q.name})
		}
	case *messages.QueueWork:
		q.add(ctx, m)
	case *reloadDone:
		q.reloading = false
		f, self, sys := &forget{owner: q}, ctx.Self(), ctx.ActorSystem().Root
		time.AfterFunc(forgetAfter, func() { sys.Send(self, f) })
	case *gaugeTick:
		if m.owner == q && !q.stopping {
			q.oldestGauge()
			q.armGauge(ctx)
		}
	case *forget:
		if m.owner == q {
			q.finished = nil
		}
	case *tick:
		if m.owner == q {
			q.onTick(ctx, m)
		}
	case *messages.JobResult:
		q.onResult(ctx, m)
	case *notAttempted:
		q.onNotAttempted(ctx, m.job)
	case *persisted:
		if m.owner == q {
			q.onPersisted(ctx, m)
		} else {
			q.releaseQuota(m) // written by a crashed incarnation: still give its quota back
		}
	case *held:
		q.onHeld(ctx, m)
	case *retryNow:
		q.onRetry(ctx, m)
	case *cancelRcpts:
		q.onCancel(ctx, m)
	case *suspendQueue:
		q.suspended = m.on
		q.deps.Logger.Warn("queue suspension changed by the operator", "queue", q.name, "suspended", m.on)
		q.pump(ctx)
	case *reconfigure:
		q.onReconfigure(ctx)
	case *suspendDomain:
		q.onSuspendDomain(ctx, m)
	case *messages.DestinationIdle:
		q.onIdle(ctx, m.Dest)
	case *actor.Terminated:
		if !q.stopping {
			// Results the destination sent before it died are still in
			// the mailbox (Terminated overtakes them): act after them.
			ctx.Send(ctx.Self(), &destGone{pid: m.Who})
		}
	case *destGone:
		q.onDestGone(ctx, m.pid)
	case *messages.Drain:
		q.startDrain(ctx, m.Done)
	case *actor.Restarting, *actor.Stopping:
		q.stopping = true
		if q.timer != nil {
			q.timer.Stop()
		}
	}
}

func (q *queueActor) add(ctx actor.Context, w *messages.QueueWork) {
	if q.finished[w.Env.ID] {
		return // finished since the restart: a stale copy
	}
	if m := q.msgs[w.Env.ID]; m != nil {
		q.merge(ctx, m, w)
		return
	}
	if w.Env.Arrival.IsZero() {
		w.Env.Arrival = time.Now()
	}
	m := &qmsg{env: w.Env, id: w.Env.ID, arrival: w.Env.Arrival.Unix(), mine: w.Rcpts, shared: w.Shared,
		busy: make([]bool, len(w.Env.Rcpts))}
	q.msgs[w.Env.ID] = m
	q.loaded++
	q.gauge()
	now := time.Now()
	if q.loaded > q.maxLoaded() && !m.shared {
		// Over the limit: due now, in turn, from the journal (where
		// Accept or the recovery found it).
		m.scheduled = now
		q.park(m)
	} else {
		q.schedule(ctx, m, now)
	}
	q.pump(ctx)
	q.armTimer(ctx)
}

func (q *queueActor) parkAfter() time.Duration {
	if q.deps.ParkAfter > 0 {
		return q.deps.ParkAfter
	}
	return parkAfter
}

func (q *queueActor) maxLoaded() int {
	if q.deps.MaxLoaded > 0 {
		return q.deps.MaxLoaded
	}
	return maxLoaded
}

// parkable reports whether m's envelope may go back to the journal: no
// recipient in a job or being journaled, nothing waiting to be written,
// and owned by this queue alone (a shared message's copies are merged in
// memory).
func (q *queueActor) parkable(m *qmsg) bool {
	if m.env == nil || m.writing || len(m.waiting) > 0 || m.shared || m.unsynced || m.scheduled.IsZero() {
		return false
	}
	for _, b := range m.busy {
		if b {
			return false
		}
	}
	return true
}

// park drops m's envelope; the journal has its state (except a limit
// hold's reason and time, which the heap entry keeps). Its entry moves
// to the parked heap, which is read only while there is room to load.
func (q *queueActor) park(m *qmsg) {
	m.env, m.busy = nil, nil
	q.loaded--
	q.gauge()
	q.parkedDue.push(dueEntry{at: m.scheduled, id: m.id})
}

// unpark reads a parked message back from the journal; false when it is
// gone (m is then forgotten) or cannot be read now (m stays parked and
// is due again in a minute).
func (q *queueActor) unpark(ctx actor.Context, m *qmsg) bool {
	env, err := q.deps.Journal.Get(m.id)
	if err != nil {
		if errors.Is(err, persistence.ErrNotFound) {
			q.deps.Logger.Warn("parked message no longer in the journal", "queue", q.name, "msgid", m.id.String())
			q.forget(m.id)
			q.gauge()
			return false
		}
		q.deps.Logger.Error("parked message cannot be read; retrying in a minute", "queue", q.name, "msgid", m.id.String(), "err", err)
		at := time.Now().Add(time.Minute)
		m.scheduled = at
		q.parkedDue.push(dueEntry{at: at, id: m.id})
		return false
	}
	m.env, m.busy = env, make([]bool, len(env.Rcpts))
	m.scheduled = time.Time{} // its parkedDue entry is stale now: the caller schedules it
	q.loaded++
	q.gauge()
	if m.retry {
		m.retry = false
		now := time.Now()
		for _, i := range m.mine {
			if rc := &env.Rcpts[i]; !rc.Status.Final() {
				rc.NextAttempt = now
			}
		}
	}
	return true
}

// forget drops a message the queue no longer holds, also from the sets of
// messages suspensions hold back (a resume would look for it in vain).
func (q *queueActor) forget(id messages.MsgID) {
	delete(q.msgs, id)
	for key, held := range q.suspHeld {
		delete(held, id)
		if len(held) == 0 {
			delete(q.suspHeld, key)
		}
	}
}

// gauge publishes how many messages the queue holds.
func (q *queueActor) gauge() {
	if q.gMsgs == nil {
		q.gMsgs, q.gLoaded = metrics.QueueMessages.WithLabelValues(q.name), metrics.QueueLoaded.WithLabelValues(q.name)
	}
	q.gMsgs.Set(float64(len(q.msgs)))
	q.gLoaded.Set(float64(q.loaded))
}

func (q *queueActor) armGauge(ctx actor.Context) {
	t, self, sys := &gaugeTick{owner: q}, ctx.Self(), ctx.ActorSystem().Root
	time.AfterFunc(gaugeEvery, func() { sys.Send(self, t) })
}

// oldestGauge publishes the age of the oldest message held: one pass over
// the queue's messages every gaugeEvery (about 5 ms for a million).
func (q *queueActor) oldestGauge() {
	oldest := int64(0)
	for _, m := range q.msgs {
		if oldest == 0 || m.arrival < oldest {
			oldest = m.arrival
		}
	}
	age := 0.0
	if oldest != 0 {
		age = max(0, float64(time.Now().Unix()-oldest))
	}
	metrics.QueueOldest.WithLabelValues(q.name).Set(age)
	q.gauge()
}

// merge adds recipients of a message the queue already holds: moved here
// from another queue. Recipients it owns already (a reload racing a live
// enqueue) are left as they are.
func (q *queueActor) merge(ctx actor.Context, m *qmsg, w *messages.QueueWork) {
	unparked := m.env == nil
	if unparked && !q.unpark(ctx, m) {
		if q.msgs[m.id] == m {
			// It cannot be read now and stays parked, due again in a
			// minute. The moved recipients are journaled as this
			// queue's (the move is a synced write): own them now, and
			// they are read back with it.
			q.adopt(m, w)
		}
		return
	}
	if !q.adopt(m, w) && !unparked {
		return
	}
	q.schedule(ctx, m, time.Now()) // an unparked message goes back on the heap even if nothing was added
	q.pump(ctx)
	q.armTimer(ctx)
}

// adopt makes w's recipients m's, those m does not own yet, with their
// states from w unless m is parked; added reports that there were some.
func (q *queueActor) adopt(m *qmsg, w *messages.QueueWork) (added bool) {
	owned := map[uint32]bool{}
	for _, i := range m.mine {
		owned[i] = true
	}
	for _, i := range w.Rcpts {
		if !owned[i] {
			if m.env != nil {
				m.env.Rcpts[i] = w.Env.Rcpts[i]
			}
			m.mine = append(m.mine, i)
			added = true
		}
	}
	m.shared = m.shared || (added && w.Shared)
	return added
}

// schedule turns the message's due recipients into jobs, fails those past
// their expiry, sends delayed DSNs that are due, and puts the message back
// on the heap for the earliest of its next attempts and notifications.
func (q *queueActor) schedule(ctx actor.Context, m *qmsg, now time.Time) {
	var next time.Time
	var due, expired, delayed []uint32
	var dueExpire []time.Duration // the schedule's expiry of each due recipient
	later := func(t time.Time) {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	for _, i := range m.mine {
		rc := &m.env.Rcpts[i]
		if rc.Status.Final() || m.busy[i] {
			continue
		}
		s := q.scheduleOf(m.env, rc)
		if rc.Attempts > 0 && s.Expire > 0 && !now.Before(m.env.Arrival.Add(s.Expire)) {
			expired = append(expired, i)
			continue
		}
		notify, nextNotify := notifyDue(m.env, rc, s, now)
		switch {
		case notify:
			delayed = append(delayed, i)
			continue
		case !rc.NextAttempt.After(now):
			if key := q.suspendedBy(m.env, rc); key != "" {
				// Held until resumed; still expires on time, attempted
				// or not (it could not be attempted).
				if s.Expire > 0 && !now.Before(m.env.Arrival.Add(s.Expire)) {
					expired = append(expired, i)
					continue
				}
				if q.suspHeld == nil {
					q.suspHeld = map[string]map[messages.MsgID]bool{}
				}
				if q.suspHeld[key] == nil {
					q.suspHeld[key] = map[messages.MsgID]bool{}
				}
				q.suspHeld[key][m.env.ID] = true
				if s.Expire > 0 {
					later(m.env.Arrival.Add(s.Expire))
				} else {
					later(now.Add(24 * time.Hour)) // a heap entry, so it can park
				}
				break
			}
			due = append(due, i)
			dueExpire = append(dueExpire, s.Expire)
		default:
			later(rc.NextAttempt)
		}
		later(nextNotify)
	}
	if len(expired) > 0 {
		q.expire(ctx, m, expired)
	}
	if len(delayed) > 0 {
		q.notifyDelay(ctx, m, delayed)
	}
	if len(due) > 0 && !q.draining {
		q.makeJobs(ctx, m, due, dueExpire)
	}
	if !next.IsZero() && (m.scheduled.IsZero() || next.Before(m.scheduled)) {
		m.scheduled = next
		q.due.push(dueEntry{at: next, id: m.env.ID})
	}
	if q.parkable(m) && m.scheduled.Sub(now) >= q.parkAfter() {
		q.park(m)
	}
}

// notifyDelay sends a delayed DSN for recipients whose notify time came.
func (q *queueActor) notifyDelay(ctx actor.Context, m *qmsg, idx []uint32) {
	p := &persisted{m: m}
	for _, i := range idx {
		rc := &m.env.Rcpts[i]
		m.busy[i] = true
		rc.NotifyNum = max(rc.NotifyNum+1, notifyCount(m.env, q.scheduleOf(m.env, rc), time.Now()))
		wantNotice(p, m.env, rc, dsn.Delayed, "")
		p.indices = append(p.indices, i)
	}
	q.persist(ctx, m, p)
}

// requireTLSKey marks the destinations of REQUIRETLS messages.
const requireTLSKey = "+requiretls"

// makeJobs groups due recipients by destination, one job per destination.
// expire[k] is the expiry of due[k]'s schedule (already evaluated).
func (q *queueActor) makeJobs(ctx actor.Context, m *qmsg, due []uint32, expire []time.Duration) {
	jobs := map[string]*messages.Job{}
	var order []*messages.Job
	for k, i := range due {
		rc := &m.env.Rcpts[i]
		key, route, domain, reply := q.destination(m.env, rc, expire[k])
		m.busy[i] = true
		if key == "" {
			q.failLocal(ctx, m, i, reply)
			continue
		}
		j := jobs[key]
		if j == nil {
			q.seq++
			j = newJob(q.seq, q.name, key, m.env)
			jobs[key] = j
			order = append(order, j)
			q.destRef(key, route, domain)
		}
		j.Rcpts = append(j.Rcpts, messages.JobRcpt{Index: rc.Index, Addr: rc.Addr, Notify: rc.Notify, ORcpt: rc.ORcpt})
		if rc.Attempts+1 > j.Attempt {
			j.Attempt, j.LastError = rc.Attempts+1, rc.LastReply.Class
		}
	}
	for _, j := range order {
		q.ready(q.dests[j.Dest], j)
	}
}

// ready appends a job to its destination's ready list.
func (q *queueActor) ready(d *destRef, j *messages.Job) {
	d.ready = append(d.ready, j)
	if !d.listed {
		d.listed = true
		q.readyDests = append(q.readyDests, d)
	}
}

func newJob(seq uint64, queue, key string, env *messages.Envelope) *messages.Job {
	return &messages.Job{Seq: seq, MsgID: env.ID, Queue: queue, Dest: key, From: env.From,
		Size: env.Size, Body: env.Body, SMTPUTF8: env.SMTPUTF8, RequireTLS: env.RequireTLS, Ret: env.Ret, EnvID: env.EnvID,
		Arrival: env.Arrival, Source: env.Source, Priority: env.Priority}
}

// destination evaluates the route strategy for a recipient and names its
// destination. An empty key comes with the reply to fail the attempt with.
func (q *queueActor) destination(env *messages.Envelope, rc *messages.Recipient, expire time.Duration) (key, route, domain string, reply messages.Reply) {
	cfg := q.deps.Cfg()
	e := envFor(env, rc, q.name)
	if expire > 0 {
		e.ExpiresIn = int64(time.Until(env.Arrival.Add(expire)) / time.Second)
	}
	route, err := cfg.Queue.Strategy.Route.Eval(&e)
	if err != nil {
		return "", "", "", messages.Reply{Text: "route strategy failed: " + err.Error(), Class: "config"}
	}
	rt, ok := cfg.Queue.Route[route]
	if !ok {
		return "", "", "", messages.Reply{Text: "route strategy named undefined route " + route, Class: "config"}
	}
	// One destination per route and recipient domain, relays included: each
	// domain's transaction, failures and connections stay its own.
	domain = messages.Domain(rc.Addr)
	key = rt.Type + ":" + route + ":" + domain
	if env.RequireTLS && rt.Type != config.RouteLocal {
		key += requireTLSKey // its own connections, all strictly verified
	}
	return key, route, domain, messages.Reply{}
}

func (q *queueActor) destRef(key, route, domain string) *destRef {
	d := q.dests[key]
	if d == nil {
		d = &destRef{key: key, route: route, domain: domain, outstanding: map[uint64]sent{}, credit: 2}
		q.dests[key] = d
	}
	return d
}

// failLocal records an attempt that never reached a destination.
func (q *queueActor) failLocal(ctx actor.Context, m *qmsg, i uint32, reply messages.Reply) {
	q.deps.Logger.Error("delivery attempt not started", "msgid", m.env.ID.String(), "rcpt", m.env.Rcpts[i].Addr, "queue", q.name, "err", reply.Text)
	q.seq++
	j := newJob(q.seq, q.name, "", m.env)
	rc := m.env.Rcpts[i]
	j.Rcpts = []messages.JobRcpt{{Index: rc.Index, Addr: rc.Addr}}
	j.Attempt = rc.Attempts + 1
	q.apply(ctx, m, &messages.JobResult{Job: j, Replies: []messages.Reply{reply}})
}

// pump sends ready jobs to destinations, round robin, within the queue's
// concurrency and each destination's credit.
func (q *queueActor) pump(ctx actor.Context) {
	for !q.draining && !q.stopping && !q.suspended && q.inFlight < q.cfg.Concurrency && len(q.readyDests) > 0 {
		sentAny := false
		kept := q.readyDests[:0]
		for _, d := range q.readyDests {
			if len(d.ready) > 0 && !d.retired && len(d.outstanding) < d.credit && q.inFlight < q.cfg.Concurrency {
				q.send(ctx, d)
				sentAny = true
			}
			if len(d.ready) > 0 {
				kept = append(kept, d)
			} else {
				d.listed = false
			}
		}
		clear(q.readyDests[len(kept):])
		q.readyDests = kept
		if !sentAny {
			return
		}
	}
}

func (q *queueActor) send(ctx actor.Context, d *destRef) {
	j := d.ready[0]
	d.ready[0] = nil
	d.ready = d.ready[1:]
	if d.pid == nil {
		d.pid = q.spawnDestination(ctx, d)
	}
	d.outstanding[j.Seq] = sent{job: j, pid: d.pid}
	q.inFlight++
	ctx.Send(d.pid, j)
	q.deps.Delivery.Write(deliverylog.Event{Event: deliverylog.Attempt, MsgID: j.MsgID.String(),
		Queue: q.name, Domain: d.domain, Attempt: j.Attempt, Rcpts: len(j.Rcpts)})
}

func (q *queueActor) spawnDestination(ctx actor.Context, d *destRef) *actor.PID {
	rt := q.deps.Cfg().Queue.Route[d.route]
	props := q.deps.props(func() actor.Actor {
		return newDestination(q.deps, q.name, q.cfg, d.key, d.route, rt, d.domain)
	}, actor.WithSupervisor(actor.NewOneForOneStrategy(0, 0, stopDecider)))
	pid := ctx.Spawn(props)
	q.byPID[pid.Id] = d.key
	return pid
}

func (q *queueActor) onTick(ctx actor.Context, t *tick) {
	if t.gen != q.timerGen {
		return // a stale timer
	}
	q.timer, q.timerAt = nil, time.Time{}
	now := time.Now()
	for q.due.Len() > 0 && !q.due.peek().at.After(now) {
		e := q.due.pop()
		m := q.msgs[e.id]
		if m == nil || m.env == nil || !m.scheduled.Equal(e.at) {
			continue // stale, or parked since (its entry is in parkedDue)
		}
		m.scheduled = time.Time{}
		q.schedule(ctx, m, now)
	}
	// Parked messages that are due, in due order, while there is room.
	for q.loaded < q.maxLoaded() && q.parkedDue.Len() > 0 && !q.parkedDue.peek().at.After(now) {
		e := q.parkedDue.pop()
		m := q.msgs[e.id]
		if m == nil || !m.scheduled.Equal(e.at) {
			continue
		}
		m.scheduled = time.Time{}
		if m.env == nil && !q.unpark(ctx, m) {
			continue
		}
		q.schedule(ctx, m, now)
	}
	q.pump(ctx)
	q.armTimer(ctx)
}

// armTimer makes sure a tick arrives when the earliest entry is due.
func (q *queueActor) armTimer(ctx actor.Context) {
	if q.stopping {
		return
	}
	var at time.Time
	if q.due.Len() > 0 {
		at = q.due.peek().at
	}
	// Parked work counts only while there is room to load it; when the
	// queue is full, a finish or a park calls again.
	if q.parkedDue.Len() > 0 && q.loaded < q.maxLoaded() {
		if p := q.parkedDue.peek().at; at.IsZero() || p.Before(at) {
			at = p
		}
	}
	if at.IsZero() {
		return
	}
	if q.timer != nil && !at.Before(q.timerAt) {
		return
	}
	if q.timer != nil {
		q.timer.Stop()
	}
	q.timerGen++
	t, self, sys := &tick{owner: q, gen: q.timerGen}, ctx.Self(), ctx.ActorSystem().Root
	q.timerAt = at
	q.timer = time.AfterFunc(time.Until(at), func() { sys.Send(self, t) })
}

func (q *queueActor) onIdle(ctx actor.Context, key string) {
	d := q.dests[key]
	if d == nil || d.pid == nil || len(d.outstanding) > 0 || len(d.ready) > 0 {
		return
	}
	delete(q.byPID, d.pid.Id)
	ctx.Stop(d.pid)
	delete(q.dests, key)
}

// onDestGone rebuilds after a destination actor crashed, once every result
// it sent before has been read: the jobs it still held are ready again
// under new sequence numbers (a late result for an old one is ignored).
func (q *queueActor) onDestGone(ctx actor.Context, who *actor.PID) {
	key, ok := q.byPID[who.Id]
	if !ok {
		return
	}
	delete(q.byPID, who.Id)
	d := q.dests[key]
	if d == nil {
		return
	}
	if d.pid != nil && d.pid.Id == who.Id {
		d.pid, d.retired = nil, false // its successor is built from the configuration in force
	}
	var lost []*messages.Job
	for seq, s := range d.outstanding {
		if s.pid.Id == who.Id {
			lost = append(lost, s.job)
			delete(d.outstanding, seq)
			q.inFlight--
		}
	}
	q.deps.Logger.Error("destination actor stopped unexpectedly", "queue", q.name, "domain", d.domain, "jobs", len(lost), "draining", q.draining)
	for _, j := range lost {
		if q.draining {
			q.release(j)
			continue
		}
		if _, ok := q.deps.Cfg().Queue.Route[d.route]; !ok {
			q.requeue(ctx, j) // its route went with a reload
			continue
		}
		q.seq++
		nj := *j
		nj.Seq = q.seq
		q.ready(d, &nj)
	}
	if d.pid == nil && len(d.ready) == 0 && len(d.outstanding) == 0 {
		delete(q.dests, key)
	}
	q.pump(ctx)
	q.armTimer(ctx)
	q.checkDrained()
}

// held: a destination holds jobs back under an outbound limit. Not an
// attempt: the recipients' last_error says why, in memory only.
type held struct {
	jobs   []*messages.Job
	reason string
	until  time.Time
}

// onHeld takes back jobs a destination holds under a limit: they leave the
// queue's concurrency budget and are due again at until (in memory only;
// no attempt is counted and nothing is journaled).
func (q *queueActor) onHeld(ctx actor.Context, h *held) {
	for _, j := range h.jobs {
		d := q.dests[j.Dest]
		if d == nil {
			continue
		}
		if _, ok := d.outstanding[j.Seq]; !ok {
			continue
		}
		delete(d.outstanding, j.Seq)
		q.inFlight--
		q.retiredDone(ctx, d)
		m := q.msgs[j.MsgID]
		if m == nil {
			continue
		}
		for _, r := range j.Rcpts {
			rc := &m.env.Rcpts[r.Index]
			rc.LastReply.Class = h.reason
			if rc.NextAttempt.Before(h.until) {
				rc.NextAttempt = h.until
			}
			m.busy[r.Index] = false
		}
		q.schedule(ctx, m, time.Now())
	}
	q.pump(ctx)
	q.armTimer(ctx)
	q.checkDrained()
}

// release frees the recipients of a job that was never attempted; they
// are due again at their old time (after a restart, for a drain).
func (q *queueActor) release(j *messages.Job) {
	m := q.msgs[j.MsgID]
	if m == nil {
		return
	}
	for _, r := range j.Rcpts {
		m.busy[r.Index] = false
	}
}

// startDrain stops new work and asks every destination to give back the
// jobs no connection has started.
func (q *queueActor) startDrain(ctx actor.Context, done chan struct{}) {
	q.draining, q.drainDone = true, done
	for _, d := range q.dests {
		if d.pid != nil {
			ctx.Send(d.pid, &returnReady{})
		}
	}
	q.checkDrained()
}

func (q *queueActor) onNotAttempted(ctx actor.Context, j *messages.Job) {
	d := q.dests[j.Dest]
	if d == nil {
		return
	}
	if _, ok := d.outstanding[j.Seq]; !ok {
		return
	}
	delete(d.outstanding, j.Seq)
	q.inFlight--
	if q.draining {
		q.release(j)
		q.checkDrained()
		return
	}
	// Handed back by a retired destination (a reload): scheduled again
	// under the configuration in force.
	q.retiredDone(ctx, d)
	q.requeue(ctx, j)
	q.pump(ctx)
	q.armTimer(ctx)
}

func (q *queueActor) checkDrained() {
	if q.drainDone != nil && q.inFlight == 0 && q.persisting == 0 {
		close(q.drainDone)
		q.drainDone = nil
	}
}
