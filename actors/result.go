package actors

import (
	"errors"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/mtad/mtad/config"
	"github.com/mtad/mtad/deliverylog"
	"github.com/mtad/mtad/dsn"
	"github.com/mtad/mtad/messages"
)

func (q *queueActor) onResult(ctx actor.Context, r *messages.JobResult) {
	j := r.Job
	d := q.dests[j.Dest]
	if d == nil {
		return
	}
	if _, ok := d.outstanding[j.Seq]; !ok {
		return // requeued when its destination crashed; the retry reports
	}
	delete(d.outstanding, j.Seq)
	q.inFlight--
	d.credit = nextCredit(d.credit, 2*q.cfg.DestinationConnections, r.Replies)
	q.retiredDone(ctx, d)
	if m := q.msgs[j.MsgID]; m != nil {
		q.apply(ctx, m, r)
	}
	q.pump(ctx)
	q.checkDrained()
}

// nextCredit is slow start for destinations: a destination that answers
// may hold twice as many jobs, up to max; one that could not be reached
// (no SMTP reply at all) goes back to 2, so a dead or tarpitting domain
// cannot tie up the queue's concurrency.
func nextCredit(credit, max int, replies []messages.Reply) int {
	for _, r := range replies {
		if r.Code != 0 {
			return min(2*credit, max)
		}
	}
	return 2
}

// apply computes the recipients' new states from a job's replies, changes
// them in memory (they stay busy), and journals them; the persisted message
// that follows acts on them.
func (q *queueActor) apply(ctx actor.Context, m *qmsg, r *messages.JobResult) {
	now := time.Now()
	p := &persisted{m: m}
	for k, jr := range r.Job.Rcpts {
		rc := &m.env.Rcpts[jr.Index]
		reply := r.Replies[k]
		rc.Attempts++
		rc.LastReply = reply
		ev := q.event(m.env, rc, r)
		switch {
		case reply.Success():
			rc.Status, ev.Event = messages.StatusDelivered, deliverylog.Delivered
			switch {
			case r.Local:
				wantNotice(p, m.env, rc, dsn.Delivered, "")
			case !r.RemoteDSN:
				wantNotice(p, m.env, rc, dsn.Relayed, r.Host)
			}
		case !reply.Temporary():
			rc.Status, ev.Event = messages.StatusFailed, deliverylog.Failed
			wantNotice(p, m.env, rc, dsn.Failed, r.Host)
		default:
			if q.retry(m.env, rc, now, &ev) {
				p.moved = append(p.moved, jr.Index)
			}
			if rc.Status == messages.StatusFailed {
				wantNotice(p, m.env, rc, dsn.Failed, r.Host)
			}
		}
		p.events = append(p.events, ev)
		p.indices = append(p.indices, jr.Index)
	}
	q.persist(ctx, m, p)
}

// retry schedules the next attempt after a temporary failure, or fails the
// recipient when its schedule allows no more. The schedule strategy is
// evaluated again (retry_num, last_error... have changed); moved reports
// that it now names another virtual queue, which takes the recipient over.
func (q *queueActor) retry(env *messages.Envelope, rc *messages.Recipient, now time.Time, ev *deliverylog.Event) (moved bool) {
	sched := q.scheduleOf(env, rc)
	if sched.MaxAttempts > 0 && rc.Attempts >= sched.MaxAttempts {
		rc.Status, ev.Event = messages.StatusFailed, deliverylog.Failed
		ev.Reply = "max attempts reached: " + ev.Reply
		return false
	}
	if sched.Queue != q.name && validQueue(q.deps.Cfg(), sched.Queue) {
		rc.Queue, moved = sched.Queue, true
	}
	next := now.Add(sched.Retry[min(rc.Attempts, len(sched.Retry))-1])
	if sched.Expire > 0 {
		if exp := env.Arrival.Add(sched.Expire); next.After(exp) {
			next = exp // fail at the expiry instant, not at the next scan
		}
	}
	rc.NextAttempt = next
	ev.Event, ev.NextTry = deliverylog.Deferred, next
	return moved
}

// scheduleOf evaluates the schedule strategy for a recipient's retry plan.
func (q *queueActor) scheduleOf(env *messages.Envelope, rc *messages.Recipient) config.Schedule {
	cfg := q.deps.Cfg()
	e := envFor(env, rc, q.name)
	name, err := cfg.Queue.Strategy.Schedule.Eval(&e)
	s, ok := cfg.Queue.Schedule[name]
	if err != nil || !ok {
		q.deps.Logger.Error("schedule strategy failed; using schedule default", "msgid", env.ID.String(), "rcpt", rc.Addr, "err", err, "schedule", name)
		return cfg.Queue.Schedule["default"]
	}
	return s
}

// expire fails recipients whose time is up.
func (q *queueActor) expire(ctx actor.Context, m *qmsg, idx []uint32) {
	p := &persisted{m: m}
	for _, i := range idx {
		rc := &m.env.Rcpts[i]
		m.busy[i] = true
		rc.Status = messages.StatusFailed
		ev := q.event(m.env, rc, nil)
		ev.Event = deliverylog.Failed
		ev.Reply = "expired after " + time.Since(m.env.Arrival).Round(time.Second).String() + "; last reply: " + rc.LastReply.String()
		p.events = append(p.events, ev)
		wantNotice(p, m.env, rc, dsn.Failed, "")
		p.indices = append(p.indices, i)
	}
	q.persist(ctx, m, p)
}

func (q *queueActor) event(env *messages.Envelope, rc *messages.Recipient, r *messages.JobResult) deliverylog.Event {
	from := env.From
	ev := deliverylog.Event{MsgID: env.ID.String(), Rcpt: rc.Addr, Sender: &from, Queue: q.name, Arrival: env.Arrival,
		Domain: messages.Domain(rc.Addr), Attempt: rc.Attempts, Code: rc.LastReply.Code,
		Enhanced: rc.LastReply.Enhanced, Reply: rc.LastReply.Text, Metadata: env.Metadata}
	if r != nil {
		ev.Host, ev.IP = r.Host, r.IP
	}
	return ev
}

// persist journals the new states of p.indices in a goroutine; the
// persisted message comes back when the write is synced. Writes of one
// message are serialized: the journal must never see an Update and the
// message's Finish race.
func (q *queueActor) persist(ctx actor.Context, m *qmsg, p *persisted) {
	p.owner = q
	q.persisting++
	if m.writing {
		m.waiting = append(m.waiting, p)
		return
	}
	q.write(ctx, m, p)
}

// write starts the journal write of p, with the recipients' states as they
// are now.
func (q *queueActor) write(ctx actor.Context, m *qmsg, p *persisted) {
	m.writing = true
	// Only the last write of a queue of writes may finish the message: the
	// ones waiting still need its body (their DSNs) and its records.
	p.done = len(m.waiting) == 0 && allFinal(m)
	id, n, size := m.env.ID, len(m.env.Rcpts), m.env.Size
	finish := p.done && !m.shared
	var states []messages.Recipient
	if !finish {
		states = make([]messages.Recipient, 0, len(p.indices))
		for _, i := range p.indices {
			states = append(states, m.env.Rcpts[i])
		}
	}
	self, sys, j, log := ctx.Self(), ctx.ActorSystem().Root, q.deps.Journal, q.deps.Logger
	root, req := ctx.Parent(), q.dsnJob(m, p)
	// A write that only defers recipients again is not synced (Defer): a
	// crash that lost it would have them tried again sooner, nothing
	// more. Final states, notices and moves are synced.
	deferOnly := !finish && req == nil && len(p.moved) == 0 && !anyFinal(states)
	q.deps.workers.Go(func() {
		var notice *messages.Envelope
		if req != nil {
			var err error
			notice, err = req.journal(j)
			var be *buildError
			switch {
			case errors.As(err, &be):
				log.Error("delivery status notification cannot be built", "msgid", id.String(), "err", err)
			case err != nil:
				// The journal failed: the state stays unwritten too, so
				// after a restart the recipient is tried again and its
				// DSN comes then. Reported, never lost.
				log.Error("delivery status notification not journaled; state not written", "msgid", id.String(), "err", err)
				p.failed = true
				sys.Send(self, p)
				return
			}
		}
		var err error
		switch {
		case finish:
			err = j.FinishSized(id, n, size)
		case deferOnly:
			err = j.Defer(id, states)
		default:
			err = j.Update(id, states)
		}
		if err != nil {
			// The outcome lives on in memory; after a crash the recipient
			// would be tried again, so the cost is a duplicate, not a loss.
			log.Error("journal write failed", "msgid", id.String(), "err", err)
			p.failed = true
		}
		if notice != nil {
			p.dsnEvent = req.event(notice, notice.Rcpts[0].Queue)
			sys.Send(root, &messages.Enqueue{Env: notice})
		}
		sys.Send(self, p)
	})
}

func (q *queueActor) onPersisted(ctx actor.Context, p *persisted) {
	q.persisting--
	m := p.m
	m.writing = false
	m.unsynced = m.unsynced || p.failed
	for _, i := range p.indices {
		m.busy[i] = false
	}
	q.releaseQuota(p)
	for _, ev := range p.events {
		q.deps.Delivery.Write(ev)
	}
	if p.dsnEvent.Event != "" {
		q.deps.Delivery.Write(p.dsnEvent)
	}
	if len(p.moved) > 0 {
		q.handOver(ctx, m, p.moved)
	}
	if len(m.waiting) > 0 {
		next := m.waiting[0]
		m.waiting = m.waiting[1:]
		q.write(ctx, m, next) // its onPersisted decides what comes next
		q.checkDrained()
		return
	}
	if p.done || allFinal(m) {
		if q.msgs[m.env.ID] == m {
			q.forget(m.env.ID)
			q.loaded--
			q.gauge()
			q.armTimer(ctx) // room for a parked message that is due
		}
		if q.finished != nil {
			q.finished[m.env.ID] = true
		}
		if m.shared {
			ctx.Send(ctx.Parent(), &checkFinished{id: m.env.ID})
		}
	} else {
		q.schedule(ctx, m, time.Now())
		q.pump(ctx)
		q.armTimer(ctx)
	}
	q.checkDrained()
}

// persisted reports a journal write of outcomes.
type persisted struct {
	owner   *queueActor // the incarnation that wrote it
	m       *qmsg
	events  []deliverylog.Event
	indices []uint32
	moved   []uint32 // recipients whose schedule now names another queue
	notices []notice // recipients to report on in a DSN
	done    bool     // every recipient this queue owns is final
	failed  bool     // the journal write failed (memory is ahead of the journal)

	dsnEvent deliverylog.Event // set by the journal goroutine when a DSN was queued
}

// move asks root to hand recipients to the queue their schedule now names.
type move struct {
	env   *messages.Envelope
	rcpts []uint32
	queue string
}

// handOver gives moved recipients (their new queue is journaled) to their
// new queue through root, and stops owning them. This queue may be left with
// nothing of the message (the caller then forgets it).
func (q *queueActor) handOver(ctx actor.Context, m *qmsg, moved []uint32) {
	byQueue := map[string][]uint32{}
	for _, i := range moved {
		byQueue[m.env.Rcpts[i].Queue] = append(byQueue[m.env.Rcpts[i].Queue], i)
	}
	for queue, idx := range byQueue {
		ctx.Send(ctx.Parent(), &move{env: cloneEnvelope(m.env), rcpts: idx, queue: queue})
	}
	m.shared = true
	kept := m.mine[:0]
	for _, i := range m.mine {
		if m.env.Rcpts[i].Queue == q.name {
			kept = append(kept, i)
		}
	}
	m.mine = kept
}

// anyFinal reports whether one of rcpts is delivered or failed.
func anyFinal(rcpts []messages.Recipient) bool {
	for i := range rcpts {
		if rcpts[i].Status.Final() {
			return true
		}
	}
	return false
}

// allFinal reports whether every recipient this queue owns is final.
func allFinal(m *qmsg) bool {
	for _, i := range m.mine {
		if !m.env.Rcpts[i].Status.Final() {
			return false
		}
	}
	return true
}

// releaseQuota gives back the queue quota of the recipients a write made
// final (Release is idempotent per recipient).
func (q *queueActor) releaseQuota(p *persisted) {
	if q.deps.Quotas == nil {
		return
	}
	for _, i := range p.indices {
		if p.m.env.Rcpts[i].Status.Final() {
			q.deps.Quotas.Release(p.m.env, i)
		}
	}
}
