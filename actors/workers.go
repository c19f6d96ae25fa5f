package actors

import (
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/panjf2000/ants/v2"
)

// workers runs the engine's short tasks (actor mailboxes, SMTP
// transactions, journal writes) on goroutines that live on after their
// task. A fresh goroutine starts with a small stack and grows it, by
// copying, each time it goes down through an SMTP transaction or a Pebble
// commit; a kept one has grown it already. Profiles of the throughput
// bench showed stack copying at 4-5% of mtad's CPU before, with a new
// goroutine for every mailbox run, delivery and journal write.
//
// The pool has no bound: a task never waits for a worker, as with the go
// statement it replaces, and workers idle for workerIdle exit. A panic in
// a task crashes the process, as it would on a goroutine of its own.
// A nil *workers, or one released, runs each task on a new goroutine.
//
// What it costs: a crash trace ends in "created by ants.(*goWorker).run"
// rather than naming the actor that started the task (the panicking frame
// is still there); the GC shrinks the stacks of workers idle for a cycle
// or two, so the saving is for workers reused while mail flows; and
// importing ants starts its package-level default pool (two goroutines
// with tickers) in every binary, which mtad does not use.
type workers struct {
	pool *ants.Pool
}

// workerIdle is how long a worker waits for a task before it exits.
const workerIdle = 10 * time.Second

// mailboxThroughput is how many messages a mailbox run takes before it
// yields its worker, protoactor's default.
const mailboxThroughput = 300

func newWorkers() *workers {
	p, err := ants.NewPool(-1, ants.WithExpiryDuration(workerIdle), ants.WithPanicHandler(func(p any) { panic(p) }))
	if err != nil {
		return nil // the options are valid; a nil pool runs tasks on new goroutines
	}
	return &workers{pool: p}
}

// Go runs f on a worker.
func (w *workers) Go(f func()) {
	if w == nil || w.pool.Submit(f) != nil {
		go f()
	}
}

// Schedule and Throughput make workers a protoactor dispatcher.
func (w *workers) Schedule(fn func()) { w.Go(fn) }
func (w *workers) Throughput() int    { return mailboxThroughput }

// release lets idle workers exit; later tasks run on new goroutines.
func (w *workers) release() {
	if w != nil {
		w.pool.Release()
	}
}

// props are the spawn options every engine actor shares: its mailbox
// runs on the engine's workers.
func (d *Deps) props(producer actor.Producer, opts ...actor.PropsOption) *actor.Props {
	return actor.PropsFromProducer(producer, append(opts, actor.WithDispatcher(d.workers))...)
}
