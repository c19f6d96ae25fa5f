package actors

import (
	"fmt"
	"slices"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/mtad/mtad/config"
	"github.com/mtad/mtad/messages"
)

// reconfigure tells root, then each queue actor, that Cfg changed.
type reconfigure struct{}

// Reload puts cfg in force: strategies, routes, schedules, TLS policies,
// limits and shaping rules apply to every decision made from now on, and
// each queue takes its new concurrency. Deliveries in flight finish as
// they started; a destination actor that holds such work is retired (it
// takes no new job and stops when its last one reports), and its next
// jobs go to a fresh one built from cfg, so connections, TLS plans and
// routes change without dropping a session. New virtual queues start.
//
// A virtual queue cannot be removed while mtad runs (its mail would have
// nowhere to go): Reload refuses such a cfg and the old one stays.
func (e *Engine) Reload(cfg *config.Config) error {
	old := e.deps.Cfg()
	var gone []string
	for name := range old.Queue.Virtual {
		if _, ok := cfg.Queue.Virtual[name]; !ok {
			gone = append(gone, name)
		}
	}
	if len(gone) > 0 {
		slices.Sort(gone)
		return fmt.Errorf("queue.virtual: %v removed; a running mtad keeps its virtual queues (remove them with a restart once they are empty)", gone)
	}
	e.deps.live.Store(cfg)
	e.system.Root.Send(e.root, &reconfigure{})
	return nil
}

// onReconfigure (root): queues for new names, and word to the others.
func (r *rootActor) onReconfigure(ctx actor.Context) {
	if r.draining {
		return
	}
	for name := range r.deps.Cfg().Queue.Virtual {
		if pid := r.queues[name]; pid != nil {
			ctx.Send(pid, &reconfigure{})
		} else {
			r.spawnQueue(ctx, name, false)
		}
	}
}

// onReconfigure (queue): the new concurrency, and fresh destinations.
func (q *queueActor) onReconfigure(ctx actor.Context) {
	if vq, ok := q.deps.Cfg().Queue.Virtual[q.name]; ok {
		q.cfg = vq
	}
	for _, d := range q.dests {
		q.retire(ctx, d)
	}
	// Jobs not yet sent were made under the old route strategy, perhaps
	// for a route that is gone: the new strategies schedule them again.
	q.requeueReady(ctx)
}

// requeueReady gives every job not yet sent back to its message and
// schedules the messages again, under the configuration and suspensions
// in force now.
func (q *queueActor) requeueReady(ctx actor.Context) {
	var waiting []*messages.Job
	for _, d := range q.dests {
		waiting = append(waiting, d.ready...)
		clear(d.ready)
		d.ready = d.ready[:0]
	}
	for _, j := range waiting {
		q.requeue(ctx, j)
	}
	q.pump(ctx)
	q.armTimer(ctx)
}

// requeue gives a job that was not attempted back to its message, whose
// recipients are scheduled again: route and destination are chosen anew.
func (q *queueActor) requeue(ctx actor.Context, j *messages.Job) {
	m := q.msgs[j.MsgID]
	if m == nil || m.env == nil {
		return
	}
	q.release(j)
	if !m.writing {
		q.schedule(ctx, m, time.Now())
	}
}

// retire replaces d's actor: at once when it holds no job, else once the
// jobs it started have reported (it hands back those it had not started).
func (q *queueActor) retire(ctx actor.Context, d *destRef) {
	if d.pid == nil {
		return
	}
	if len(d.outstanding) == 0 {
		q.stopDestination(ctx, d)
		return
	}
	if !d.retired {
		d.retired = true
		ctx.Send(d.pid, &returnReady{})
	}
}

// retired: a retired destination whose last job reported is stopped.
func (q *queueActor) retiredDone(ctx actor.Context, d *destRef) {
	if d.retired && len(d.outstanding) == 0 {
		q.stopDestination(ctx, d)
	}
}

func (q *queueActor) stopDestination(ctx actor.Context, d *destRef) {
	delete(q.byPID, d.pid.Id)
	ctx.Stop(d.pid)
	d.pid, d.retired = nil, false
}
