package actors

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/mtad/mtad/messages"
)

// Operator controls, sent from the management API through root to the
// queue actors. They act on what a queue holds now: recipients in flight
// are not touched (a retry would duplicate them; a cancel comes too late).
type (
	retryNow    struct{ ids map[messages.MsgID]bool }
	cancelRcpts struct {
		ids  map[messages.MsgID]bool
		rcpt string // "" for every pending recipient
	}
	suspendQueue  struct{ on bool }
	suspendDomain struct {
		key string // "rcpt:" or "sender:" and the lower-case domain
		on  bool
	}
)

// SuspendDomain stops (or resumes) delivery to a recipient domain
// (sender false) or of mail from a sender domain (sender true), in every
// queue. Its mail stays queued, keeps its expiry and its delayed DSNs, and
// is due at once on resume. Like a queue's, the suspension is saved in the
// journal and lasts until resumed, across restarts.
func (e *Engine) SuspendDomain(domain string, sender, on bool) error {
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	if domain == "" || strings.ContainsAny(domain, "@ /") {
		return fmt.Errorf("%q is not a domain", domain)
	}
	key := "rcpt:" + domain
	if sender {
		key = "sender:" + domain
	}
	e.remember(key, on)
	e.system.Root.Send(e.root, &suspendDomain{key: key, on: on})
	return nil
}

// suspendedBy names the suspension that holds recipient rc of env back,
// or "".
func (q *queueActor) suspendedBy(env *messages.Envelope, rc *messages.Recipient) string {
	if len(q.susp) == 0 {
		return ""
	}
	if k := "sender:" + messages.Domain(env.From); q.susp[k] {
		return k
	}
	if k := "rcpt:" + messages.Domain(rc.Addr); q.susp[k] {
		return k
	}
	return ""
}

// onSuspendDomain records the suspension; a resume makes what it held due.
func (q *queueActor) onSuspendDomain(ctx actor.Context, m *suspendDomain) {
	q.deps.Logger.Warn("domain suspension changed by the operator", "queue", q.name, "domain", m.key, "suspended", m.on)
	if m.on {
		if q.susp == nil {
			q.susp = map[string]bool{}
		}
		q.susp[m.key] = true
		// Jobs made before, not yet sent: the suspended ones are held
		// back, the others made anew.
		q.requeueReady(ctx)
		return
	}
	delete(q.susp, m.key)
	now := time.Now()
	for id := range q.suspHeld[m.key] {
		if msg := q.msgs[id]; msg != nil {
			msg.scheduled = now
			if msg.env == nil {
				q.parkedDue.push(dueEntry{at: now, id: id})
			} else {
				q.due.push(dueEntry{at: now, id: id})
			}
		}
	}
	delete(q.suspHeld, m.key)
	q.armTimer(ctx)
}

// cancelReply is what a cancelled recipient fails with.
var cancelReply = messages.Reply{Code: 550, Enhanced: "5.0.0", Text: "cancelled by the operator", Class: "cancel"}

// Retry makes every pending recipient of the messages due now.
func (e *Engine) Retry(ids []messages.MsgID) {
	e.system.Root.Send(e.root, &retryNow{ids: idSet(ids)})
}

// Cancel fails the pending recipients of the messages (only rcpt when it
// is not ""), as the operator's decision; DSNs follow NOTIFY.
func (e *Engine) Cancel(ids []messages.MsgID, rcpt string) {
	e.system.Root.Send(e.root, &cancelRcpts{ids: idSet(ids), rcpt: strings.ToLower(rcpt)})
}

// SuspendQueue stops (or resumes) a virtual queue's deliveries; its mail
// stays queued and keeps its expiry. The suspension is saved in the
// journal and lasts until resumed, across restarts.
func (e *Engine) SuspendQueue(name string, on bool) error {
	if _, ok := e.deps.Cfg().Queue.Virtual[name]; !ok {
		return fmt.Errorf("no virtual queue %q", name)
	}
	e.remember("queue:"+name, on)
	e.system.Root.Send(e.root, &suspendTo{queue: name, msg: &suspendQueue{on: on}})
	return nil
}

// suspensionSet is the operator's suspensions in force ("queue:NAME",
// "rcpt:DOMAIN", "sender:DOMAIN"). A queue actor that starts (a crash, a
// respawn, a queue a reload added) takes them from here; those running
// are told by message.
type suspensionSet struct {
	mu   sync.Mutex
	keys map[string]bool
}

// apply puts the suspensions that concern queue name on q.
func (s *suspensionSet) apply(q *queueActor) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for k := range s.keys {
		kind, value, _ := strings.Cut(k, ":")
		switch {
		case kind == "queue" && value == q.name:
			q.suspended = true
		case kind == "rcpt" || kind == "sender":
			if q.susp == nil {
				q.susp = map[string]bool{}
			}
			q.susp[k] = true
		}
	}
}

// suspensionStore keeps the operator's suspensions across restarts; the
// journal is one.
type suspensionStore interface {
	SaveSuspensions(keys []string) error
	Suspensions() ([]string, error)
}

// remember records a suspension change and saves the set, so a restart
// keeps it. A failed save is logged: the suspension holds until then.
func (e *Engine) remember(key string, on bool) {
	s := e.deps.susp
	s.mu.Lock()
	defer s.mu.Unlock() // held while saving, so concurrent changes are saved in order
	if on {
		s.keys[key] = true
	} else {
		delete(s.keys, key)
	}
	if err := e.saveSuspensions(); err != nil {
		e.deps.Logger.Error("suspensions not saved: a restart would lift this change", "suspension", key, "on", on, "err", err)
	}
}

// saveSuspensions writes the set in force to the journal, if it keeps
// suspensions. REQUIRES: e.deps.susp.mu held.
func (e *Engine) saveSuspensions() error {
	st, ok := e.deps.Journal.(suspensionStore)
	if !ok {
		return nil
	}
	keys := make([]string, 0, len(e.deps.susp.keys))
	for k := range e.deps.susp.keys {
		keys = append(keys, k)
	}
	return st.SaveSuspensions(keys)
}

// restoreSuspensions puts the saved suspensions back in force; Start
// calls it before any mail is enqueued.
func (e *Engine) restoreSuspensions() error {
	st, ok := e.deps.Journal.(suspensionStore)
	if !ok {
		return nil
	}
	keys, err := st.Suspensions()
	if err != nil {
		return err
	}
	var kept []string
	for _, k := range keys {
		kind, value, _ := strings.Cut(k, ":")
		switch kind {
		case "queue":
			if _, ok := e.deps.Cfg().Queue.Virtual[value]; !ok {
				e.deps.Logger.Warn("saved suspension of a virtual queue that is no longer configured: dropped", "queue", value)
				continue
			}
			e.system.Root.Send(e.root, &suspendTo{queue: value, msg: &suspendQueue{on: true}})
		case "rcpt", "sender":
			e.system.Root.Send(e.root, &suspendDomain{key: k, on: true})
		default:
			e.deps.Logger.Warn("unknown saved suspension: dropped", "key", k)
			continue
		}
		kept = append(kept, k)
		e.deps.Logger.Warn("suspension restored from the journal", "suspension", k)
	}
	if len(kept) == 0 {
		return nil
	}
	// One save for them all, which also drops the saved keys not kept.
	s := e.deps.susp
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range kept {
		s.keys[k] = true
	}
	if err := e.saveSuspensions(); err != nil {
		e.deps.Logger.Error("suspensions not saved: a restart would lift them", "suspensions", kept, "err", err)
	}
	return nil
}

type suspendTo struct {
	queue string
	msg   *suspendQueue
}

func idSet(ids []messages.MsgID) map[messages.MsgID]bool {
	m := make(map[messages.MsgID]bool, len(ids))
	for _, id := range ids {
		m[id] = true
	}
	return m
}

// onRetry makes the pending recipients of the messages due now.
func (q *queueActor) onRetry(ctx actor.Context, r *retryNow) {
	now := time.Now()
	for id := range r.ids {
		m := q.msgs[id]
		if m == nil {
			continue
		}
		if m.env == nil {
			// Parked: due now, and every pending recipient too once read
			// back (a retry of a million parked messages reads none now).
			m.retry, m.scheduled = true, now
			q.parkedDue.push(dueEntry{at: now, id: id})
			continue
		}
		for _, i := range m.mine {
			rc := &m.env.Rcpts[i]
			if !rc.Status.Final() && !m.busy[i] {
				rc.NextAttempt = now
			}
		}
		q.schedule(ctx, m, now)
	}
	q.pump(ctx)
	q.armTimer(ctx)
}

// onCancel fails the selected pending recipients, through the same path as
// a permanent reply (journal, DSN, delivery log).
func (q *queueActor) onCancel(ctx actor.Context, c *cancelRcpts) {
	for id := range c.ids {
		m := q.msgs[id]
		if m == nil || (m.env == nil && !q.unpark(ctx, m)) {
			continue
		}
		q.seq++
		j := newJob(q.seq, q.name, "", m.env)
		var replies []messages.Reply
		for _, i := range m.mine {
			rc := &m.env.Rcpts[i]
			if rc.Status.Final() || m.busy[i] || (c.rcpt != "" && strings.ToLower(rc.Addr) != c.rcpt) {
				continue
			}
			m.busy[i] = true
			j.Rcpts = append(j.Rcpts, messages.JobRcpt{Index: rc.Index, Addr: rc.Addr})
			replies = append(replies, cancelReply)
		}
		if len(j.Rcpts) > 0 {
			q.apply(ctx, m, &messages.JobResult{Job: j, Replies: replies})
		} else if m.scheduled.IsZero() {
			q.schedule(ctx, m, time.Now()) // unparked for nothing: back on the heap
		}
	}
	q.pump(ctx)
	q.armTimer(ctx)
}

// SiteOf names the provider site (`[queue.site.X] mx-suffix`) whose MX
// hosts serve domain, or "" when none does or the MX lookup fails. It
// asks DNS (through the resolver's cache) only when sites are configured.
func (e *Engine) SiteOf(ctx context.Context, domain string) string {
	cfg := e.deps.Cfg()
	if len(cfg.Queue.Site) == 0 {
		return ""
	}
	mx, err := e.deps.Resolver.LookupMXFull(ctx, domain)
	if err != nil {
		return ""
	}
	hosts := make([]string, len(mx.Records))
	for i, r := range mx.Records {
		hosts[i] = r.Host
	}
	return siteOf(cfg, hosts)
}
