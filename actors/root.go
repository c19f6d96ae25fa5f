package actors

import (
	"sync"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/mtad/mtad/expression"
	"github.com/mtad/mtad/messages"
)

// rootActor is the dispatcher: it owns the queue actors, places each
// recipient of a new message in the virtual queue its schedule names, and
// deletes messages whose recipients were spread over several queues once
// all of them are final.
type rootActor struct {
	deps     *Deps
	queues   map[string]*actor.PID
	checking map[messages.MsgID]bool // finish checks running; root goroutine only
	recheck  map[messages.MsgID]bool
	draining bool
}

// checkFinished asks root to delete a shared message if all its recipients
// are final (sent by a queue actor when its share is done).
type checkFinished struct{ id messages.MsgID }

// checked reports the end of a finish check.
type checked struct{ id messages.MsgID }

// reload asks root to replay the journal into a restarted queue actor.
type reload struct{ queue string }

func newRoot(d *Deps) *rootActor {
	return &rootActor{deps: d, queues: map[string]*actor.PID{},
		checking: map[messages.MsgID]bool{}, recheck: map[messages.MsgID]bool{}}
}

// Receive runs on the root actor's goroutine.
func (r *rootActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		r.spawnQueues(ctx)
	case *messages.Enqueue:
		r.dispatch(ctx, m.Env)
	case *checkFinished:
		r.startCheck(ctx, m.id)
	case *checked:
		delete(r.checking, m.id)
		if r.recheck[m.id] {
			delete(r.recheck, m.id)
			r.startCheck(ctx, m.id)
		}
	case *reload:
		r.startReload(ctx, m.queue)
	case *messages.Drain:
		r.drain(ctx, m)
	case *actor.Terminated:
		if r.draining {
			return
		}
		r.deps.Logger.Error("queue actor stopped after repeated crashes; its mail is delivered after the next start", "pid", m.Who.Id)
	}
}

func (r *rootActor) spawnQueues(ctx actor.Context) {
	for name, cfg := range r.deps.Config.Queue.Virtual {
		starts := 0
		props := actor.PropsFromProducer(func() actor.Actor {
			starts++
			return newQueue(r.deps, name, cfg, starts > 1)
		}, actor.WithSupervisor(actor.NewOneForOneStrategy(0, 0, stopDecider)))
		pid, err := ctx.SpawnNamed(props, "q-"+name)
		if err != nil {
			r.deps.Logger.Error("spawn queue actor", "queue", name, "err", err)
			continue
		}
		r.queues[name] = pid
	}
}

// dispatch places each pending recipient of env in a queue and hands the
// message to those queues.
func (r *rootActor) dispatch(ctx actor.Context, env *messages.Envelope) {
	groups := map[string][]uint32{}
	for i := range env.Rcpts {
		rc := &env.Rcpts[i]
		if rc.Status.Final() {
			continue
		}
		if _, ok := r.queues[rc.Queue]; !ok {
			rc.Queue = r.queueFor(env, rc)
		}
		groups[rc.Queue] = append(groups[rc.Queue], rc.Index)
	}
	shared := len(groups) > 1
	for name, idx := range groups {
		e := env
		if shared {
			e = cloneEnvelope(env)
		}
		ctx.Send(r.queues[name], &messages.QueueWork{Env: e, Rcpts: idx, Shared: shared})
	}
}

// queueFor evaluates the schedule strategy for one recipient. An error at
// run time (the configuration check catches all it can at load) puts the
// recipient in the default queue, loudly.
func (r *rootActor) queueFor(env *messages.Envelope, rc *messages.Recipient) string {
	cfg := r.deps.Config
	e := envFor(env, rc, "")
	name, err := cfg.Queue.Strategy.Schedule.Eval(&e)
	sched, ok := cfg.Queue.Schedule[name]
	if err != nil || !ok {
		r.deps.Logger.Error("schedule strategy failed; using queue default", "msgid", env.ID.String(), "rcpt", rc.Addr, "err", err, "schedule", name)
		return "default"
	}
	if _, ok := r.queues[sched.Queue]; !ok {
		return "default"
	}
	return sched.Queue
}

func (r *rootActor) startCheck(ctx actor.Context, id messages.MsgID) {
	if r.checking[id] {
		r.recheck[id] = true
		return
	}
	r.checking[id] = true
	self, sys, j, log := ctx.Self(), ctx.ActorSystem().Root, r.deps.Journal, r.deps.Logger
	go func() {
		defer sys.Send(self, &checked{id: id})
		env, err := j.Get(id)
		if err != nil || env.Pending() > 0 {
			return
		}
		if err := j.Finish(id, len(env.Rcpts)); err != nil {
			log.Error("journal finish failed", "msgid", id.String(), "err", err)
		}
	}()
}

func (r *rootActor) startReload(ctx actor.Context, queue string) {
	pid, ok := r.queues[queue]
	if !ok {
		return
	}
	sys, j, log := ctx.ActorSystem().Root, r.deps.Journal, r.deps.Logger
	go func() {
		err := j.Load(func(env *messages.Envelope) error {
			var idx []uint32
			shared := false
			for _, rc := range env.Rcpts {
				switch {
				case rc.Status.Final():
				case rc.Queue == queue:
					idx = append(idx, rc.Index)
				default:
					shared = true
				}
			}
			if len(idx) > 0 {
				sys.Send(pid, &messages.QueueWork{Env: env, Rcpts: idx, Shared: shared})
			}
			return nil
		})
		if err != nil {
			log.Error("reload of restarted queue failed", "queue", queue, "err", err)
		}
	}()
}

func (r *rootActor) drain(ctx actor.Context, m *messages.Drain) {
	r.draining = true
	var wg sync.WaitGroup
	for _, pid := range r.queues {
		done := make(chan struct{})
		wg.Add(1)
		go func() { <-done; wg.Done() }()
		ctx.Send(pid, &messages.Drain{Done: done})
	}
	go func() { wg.Wait(); close(m.Done) }()
}

func cloneEnvelope(e *messages.Envelope) *messages.Envelope {
	c := *e
	c.Rcpts = append([]messages.Recipient(nil), e.Rcpts...)
	return &c
}

// envFor builds the expression context for one recipient.
func envFor(env *messages.Envelope, rc *messages.Recipient, queue string) expression.Env {
	return expression.Env{
		Rcpt: rc.Addr, RcptDomain: messages.Domain(rc.Addr),
		Sender: env.From, SenderDomain: messages.Domain(env.From),
		Recipients: len(env.Rcpts), Priority: env.Priority, Size: env.Size,
		RetryNum: rc.Attempts, NotifyNum: rc.NotifyNum, QueueName: queue,
		LastError: rc.LastReply.Class, LastStatus: rc.LastReply.Code,
		Source: env.Source, ReceivedFrom: env.ReceivedFromIP,
	}
}
