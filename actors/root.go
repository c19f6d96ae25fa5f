package actors

import (
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/mtad/mtad/config"
	"github.com/mtad/mtad/messages"
)

// respawnDelay is how long root waits before it replaces a queue actor
// that its supervisor stopped after repeated crashes.
const respawnDelay = 5 * time.Second

// rootActor is the dispatcher: it owns the queue actors, hands each
// message's recipients to the queues they were placed in, replays the
// journal into a queue that restarted, and deletes messages whose
// recipients were spread over several queues once all of them are final.
type rootActor struct {
	deps     *Deps
	restart  bool // this incarnation replaces a crashed one
	queues   map[string]*actor.PID
	names    map[string]string // queue pid id -> name
	checking map[messages.MsgID]bool
	recheck  map[messages.MsgID]bool
	draining bool
}

// checkFinished asks root to delete a shared message if all its recipients
// are final (sent by a queue actor when its share is done).
type checkFinished struct{ id messages.MsgID }

// checked reports the end of a finish check.
type checked struct{ id messages.MsgID }

// reload asks root to replay the journal into a restarted queue actor;
// reloadDone tells the queue the replay is complete.
type (
	reload     struct{ queue string }
	reloadDone struct{}
	respawn    struct{ queue string }
)

func newRoot(d *Deps, restart bool) *rootActor {
	return &rootActor{deps: d, restart: restart, queues: map[string]*actor.PID{}, names: map[string]string{},
		checking: map[messages.MsgID]bool{}, recheck: map[messages.MsgID]bool{}}
}

// Receive runs on the root actor's goroutine.
func (r *rootActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		for name := range r.deps.Cfg().Queue.Virtual {
			r.spawnQueue(ctx, name, r.restart)
		}
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
	case *retryNow, *cancelRcpts, *suspendDomain:
		for _, pid := range r.queues {
			ctx.Send(pid, m)
		}
	case *suspendTo:
		if pid := r.queues[m.queue]; pid != nil {
			ctx.Send(pid, m.msg)
		}
	case *move:
		r.send(ctx, m.queue, &messages.QueueWork{Env: m.env, Rcpts: m.rcpts, Shared: true})
	case *respawn:
		if !r.draining && r.queues[m.queue] == nil {
			r.spawnQueue(ctx, m.queue, true)
		}
	case *reconfigure:
		r.onReconfigure(ctx)
	case *messages.Drain:
		r.drain(ctx, m)
	case *actor.Terminated:
		r.onTerminated(ctx, m.Who)
	}
}

// spawnQueue starts a queue actor; restart makes its first incarnation
// reload from the journal too (root itself, or the queue, was replaced).
func (r *rootActor) spawnQueue(ctx actor.Context, name string, restart bool) {
	starts := 0
	props := r.deps.props(func() actor.Actor {
		starts++
		cfg := r.deps.Cfg().Queue.Virtual[name] // a restart takes what is in force
		return newQueue(r.deps, name, cfg, restart || starts > 1)
	}, actor.WithSupervisor(actor.NewOneForOneStrategy(0, 0, stopDecider)))
	pid, err := ctx.SpawnNamed(props, "q-"+name)
	if err != nil {
		r.deps.Logger.Error("spawn queue actor", "queue", name, "err", err)
		return
	}
	r.queues[name] = pid
	r.names[pid.Id] = name
}

// onTerminated: the queue's supervisor (root's strategy) gave up after
// repeated crashes. Its mail is in the journal; a new queue actor takes it
// over after a pause.
func (r *rootActor) onTerminated(ctx actor.Context, who *actor.PID) {
	name, ok := r.names[who.Id]
	if !ok {
		return
	}
	delete(r.names, who.Id)
	delete(r.queues, name)
	if r.draining {
		return
	}
	r.deps.Logger.Error("queue actor stopped after repeated crashes; replacing it", "queue", name, "after", respawnDelay)
	self, sys := ctx.Self(), ctx.ActorSystem().Root
	time.AfterFunc(respawnDelay, func() { sys.Send(self, &respawn{queue: name}) })
}

// dispatch hands a message to the queues its recipients were placed in.
func (r *rootActor) dispatch(ctx actor.Context, env *messages.Envelope) {
	groups := map[string][]uint32{}
	for i := range env.Rcpts {
		rc := &env.Rcpts[i]
		if rc.Status.Final() {
			continue
		}
		if !validQueue(r.deps.Cfg(), rc.Queue) {
			rc.Queue = placeRecipient(r.deps.Cfg(), r.deps.Logger, env, rc)
		}
		groups[rc.Queue] = append(groups[rc.Queue], rc.Index)
	}
	shared := len(groups) > 1
	for name, idx := range groups {
		e := env
		if shared {
			e = cloneEnvelope(env)
		}
		r.send(ctx, name, &messages.QueueWork{Env: e, Rcpts: idx, Shared: shared})
	}
}

// send delivers to a queue; while a crashed queue waits to be replaced,
// its work stays in the journal and comes back with the reload.
func (r *rootActor) send(ctx actor.Context, queue string, w *messages.QueueWork) {
	if pid := r.queues[queue]; pid != nil {
		ctx.Send(pid, w)
	}
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
		if err := j.FinishSized(id, len(env.Rcpts), env.Size); err != nil {
			log.Error("journal finish failed", "msgid", id.String(), "err", err)
		}
	}()
}

// startReload replays the journal's pending recipients of one queue into
// it, off root's mailbox, then tells it the replay is complete.
func (r *rootActor) startReload(ctx actor.Context, queue string) {
	pid := r.queues[queue]
	if pid == nil {
		return
	}
	sys, j, log, cfg := ctx.ActorSystem().Root, r.deps.Journal, r.deps.Logger, r.deps.Cfg()
	go func() {
		err := j.Load(func(env *messages.Envelope) error {
			if w := reloadWork(cfg, env, queue); w != nil {
				sys.Send(pid, w)
			}
			return nil
		})
		if err != nil {
			log.Error("reload of restarted queue failed", "queue", queue, "err", err)
		}
		sys.Send(pid, &reloadDone{})
	}()
}

// reloadWork selects a journaled message's pending recipients of one queue.
func reloadWork(cfg *config.Config, env *messages.Envelope, queue string) *messages.QueueWork {
	var idx []uint32
	shared := false
	for i := range env.Rcpts {
		rc := &env.Rcpts[i]
		if rc.Status.Final() {
			continue
		}
		if !validQueue(cfg, rc.Queue) {
			rc.Queue = "default" // its queue is gone from the configuration
		}
		if rc.Queue == queue {
			idx = append(idx, rc.Index)
		} else {
			shared = true
		}
	}
	if len(idx) == 0 {
		return nil
	}
	return &messages.QueueWork{Env: env, Rcpts: idx, Shared: shared, Reload: true}
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
