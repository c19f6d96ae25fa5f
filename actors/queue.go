package actors

import (
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/mtad/mtad/config"
	"github.com/mtad/mtad/deliverylog"
	"github.com/mtad/mtad/messages"
)

// queueActor owns one virtual queue: the recipients placed in it, when each
// is due, the jobs in flight and the queue's concurrency budget.
type queueActor struct {
	deps    *Deps
	name    string
	cfg     config.VirtualQueue
	restart bool

	msgs       map[messages.MsgID]*qmsg
	due        dueHeap
	timer      *time.Timer
	timerAt    time.Time
	timerGen   uint64
	dests      map[string]*destRef
	byPID      map[string]string // destination pid id -> key
	readyDests []*destRef
	inFlight   int // jobs sent to destinations, no result yet
	persisting int // journal writes in flight
	seq        uint64
	draining   bool          // no new job starts
	drainDone  chan struct{} // closed when draining and nothing is in flight
}

// qmsg is a message as its queue holds it.
type qmsg struct {
	env       *messages.Envelope
	mine      []uint32 // recipient indices this queue owns
	shared    bool
	busy      []bool    // by recipient index: in a job or being journaled
	scheduled time.Time // due time of this message's heap entry; zero if none
}

// destRef is the queue's view of one destination actor.
type destRef struct {
	key         string
	route       string
	domain      string
	pid         *actor.PID
	ready       []*messages.Job
	outstanding map[uint64]*messages.Job
	listed      bool // in readyDests
}

type tick struct{ gen uint64 }

// persisted reports a journal write of job outcomes.
type persisted struct {
	m       *qmsg
	events  []deliverylog.Event
	indices []uint32
	done    bool // every recipient this queue owns is final
}

func newQueue(d *Deps, name string, cfg config.VirtualQueue, restart bool) *queueActor {
	return &queueActor{deps: d, name: name, cfg: cfg, restart: restart,
		msgs: map[messages.MsgID]*qmsg{}, dests: map[string]*destRef{}, byPID: map[string]string{}}
}

// Receive runs on the queue actor's goroutine.
func (q *queueActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		if q.restart {
			q.deps.Logger.Warn("queue actor restarted; reloading from the journal", "queue", q.name)
			ctx.Send(ctx.Parent(), &reload{queue: q.name})
		}
	case *messages.QueueWork:
		q.add(ctx, m)
	case *tick:
		q.onTick(ctx, m)
	case *messages.JobResult:
		q.onResult(ctx, m)
	case *persisted:
		q.onPersisted(ctx, m)
	case *messages.DestinationIdle:
		q.onIdle(ctx, m.Dest)
	case *actor.Terminated:
		q.onTerminated(ctx, m.Who)
	case *messages.Drain:
		q.draining, q.drainDone = true, m.Done
		q.checkDrained()
	case *actor.Stopping:
		if q.timer != nil {
			q.timer.Stop()
		}
	}
}

func (q *queueActor) add(ctx actor.Context, w *messages.QueueWork) {
	if _, dup := q.msgs[w.Env.ID]; dup {
		return // a reload raced with a live enqueue
	}
	m := &qmsg{env: w.Env, mine: w.Rcpts, shared: w.Shared, busy: make([]bool, len(w.Env.Rcpts))}
	q.msgs[w.Env.ID] = m
	if w.Env.Arrival.IsZero() {
		w.Env.Arrival = time.Now()
	}
	q.schedule(ctx, m, time.Now())
	q.pump(ctx)
	q.armTimer(ctx)
}

// schedule turns the message's due recipients into jobs and puts the
// message back on the heap for the earliest recipient not yet due.
func (q *queueActor) schedule(ctx actor.Context, m *qmsg, now time.Time) {
	var next time.Time
	var due []uint32
	var expired []uint32
	for _, i := range m.mine {
		rc := &m.env.Rcpts[i]
		if rc.Status.Final() || m.busy[i] {
			continue
		}
		switch {
		case q.expiredAt(m.env, rc, now):
			expired = append(expired, i)
		case !rc.NextAttempt.After(now):
			due = append(due, i)
		case next.IsZero() || rc.NextAttempt.Before(next):
			next = rc.NextAttempt
		}
	}
	if len(expired) > 0 {
		q.expire(ctx, m, expired)
	}
	if len(due) > 0 {
		q.makeJobs(ctx, m, due)
	}
	if !next.IsZero() && (m.scheduled.IsZero() || next.Before(m.scheduled)) {
		m.scheduled = next
		q.due.push(dueEntry{at: next, id: m.env.ID})
	}
}

// makeJobs groups due recipients by destination, one job per destination.
func (q *queueActor) makeJobs(ctx actor.Context, m *qmsg, due []uint32) {
	jobs := map[string]*messages.Job{}
	var order []*messages.Job
	for _, i := range due {
		rc := &m.env.Rcpts[i]
		key, route, domain, reply := q.destination(m.env, rc)
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
			j.Attempt = rc.Attempts + 1
		}
	}
	for _, j := range order {
		d := q.dests[j.Dest]
		d.ready = append(d.ready, j)
		if !d.listed {
			d.listed = true
			q.readyDests = append(q.readyDests, d)
		}
	}
}

func newJob(seq uint64, queue, key string, env *messages.Envelope) *messages.Job {
	return &messages.Job{Seq: seq, MsgID: env.ID, Queue: queue, Dest: key, From: env.From,
		Size: env.Size, Body: env.Body, SMTPUTF8: env.SMTPUTF8, Ret: env.Ret, EnvID: env.EnvID,
		Arrival: env.Arrival, Source: env.Source, Priority: env.Priority}
}

// destination evaluates the route strategy for a recipient and names its
// destination. An empty key comes with the reply to fail the attempt with.
func (q *queueActor) destination(env *messages.Envelope, rc *messages.Recipient) (key, route, domain string, reply messages.Reply) {
	cfg := q.deps.Config
	e := envFor(env, rc, q.name)
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
	return rt.Type + ":" + route + ":" + domain, route, domain, messages.Reply{}
}

func (q *queueActor) destRef(key, route, domain string) *destRef {
	d := q.dests[key]
	if d == nil {
		d = &destRef{key: key, route: route, domain: domain, outstanding: map[uint64]*messages.Job{}}
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
	limit := 2 * q.cfg.DestinationConnections
	for !q.draining && q.inFlight < q.cfg.Concurrency && len(q.readyDests) > 0 {
		sent := false
		kept := q.readyDests[:0]
		for _, d := range q.readyDests {
			if len(d.ready) > 0 && len(d.outstanding) < limit && q.inFlight < q.cfg.Concurrency {
				q.send(ctx, d)
				sent = true
			}
			if len(d.ready) > 0 {
				kept = append(kept, d)
			} else {
				d.listed = false
			}
		}
		clear(q.readyDests[len(kept):])
		q.readyDests = kept
		if !sent {
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
	d.outstanding[j.Seq] = j
	q.inFlight++
	ctx.Send(d.pid, j)
	q.deps.Delivery.Write(deliverylog.Event{Event: deliverylog.Attempt, MsgID: j.MsgID.String(),
		Queue: q.name, Domain: d.domain, Attempt: j.Attempt, Rcpts: len(j.Rcpts)})
}

func (q *queueActor) spawnDestination(ctx actor.Context, d *destRef) *actor.PID {
	rt := q.deps.Config.Queue.Route[d.route]
	props := actor.PropsFromProducer(func() actor.Actor {
		return newDestination(q.deps, q.cfg, d.key, d.route, rt, d.domain)
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
		if m == nil || !m.scheduled.Equal(e.at) {
			continue
		}
		m.scheduled = time.Time{}
		q.schedule(ctx, m, now)
	}
	q.pump(ctx)
	q.armTimer(ctx)
}

// armTimer makes sure a tick arrives when the earliest entry is due.
func (q *queueActor) armTimer(ctx actor.Context) {
	if q.due.Len() == 0 {
		return
	}
	at := q.due.peek().at
	if q.timer != nil && !at.Before(q.timerAt) {
		return
	}
	if q.timer != nil {
		q.timer.Stop()
	}
	q.timerGen++
	gen, self, sys := q.timerGen, ctx.Self(), ctx.ActorSystem().Root
	q.timerAt = at
	q.timer = time.AfterFunc(time.Until(at), func() { sys.Send(self, &tick{gen: gen}) })
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

// onTerminated rebuilds after a destination actor crashed: its outstanding
// jobs are ready again and a new actor is spawned when they are sent.
func (q *queueActor) onTerminated(ctx actor.Context, who *actor.PID) {
	key, ok := q.byPID[who.Id]
	if !ok || q.draining {
		return
	}
	delete(q.byPID, who.Id)
	d := q.dests[key]
	if d == nil || d.pid == nil || d.pid.Id != who.Id {
		return
	}
	q.deps.Logger.Error("destination actor stopped unexpectedly; requeueing its jobs", "queue", q.name, "domain", d.domain, "jobs", len(d.outstanding))
	d.pid = nil
	for _, j := range d.outstanding {
		d.ready = append(d.ready, j)
		q.inFlight--
	}
	clear(d.outstanding)
	if len(d.ready) > 0 && !d.listed {
		d.listed = true
		q.readyDests = append(q.readyDests, d)
	}
	q.pump(ctx)
}

func (q *queueActor) checkDrained() {
	if q.drainDone != nil && q.inFlight == 0 && q.persisting == 0 {
		close(q.drainDone)
		q.drainDone = nil
	}
}
