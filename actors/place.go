package actors

import (
	"log/slog"

	"github.com/mtad/mtad/config"
	"github.com/mtad/mtad/expression"
	"github.com/mtad/mtad/messages"
)

// Place chooses the virtual queue of every pending recipient of env that
// has none yet, by the schedule strategy. The server calls it before the
// message is journaled, so the queue is in the journal from the start and
// a restarted queue actor can find its recipients there. It reads only the
// immutable configuration and is safe for concurrent use.
func (e *Engine) Place(env *messages.Envelope) {
	for i := range env.Rcpts {
		rc := &env.Rcpts[i]
		if !rc.Status.Final() && !validQueue(e.deps.Cfg(), rc.Queue) {
			rc.Queue = placeRecipient(e.deps.Cfg(), e.deps.Logger, env, rc)
		}
	}
}

func validQueue(cfg *config.Config, name string) bool {
	_, ok := cfg.Queue.Virtual[name]
	return ok
}

// placeRecipient evaluates the schedule strategy for one recipient. An
// error at run time (the configuration check catches what it can at load)
// puts the recipient in the default queue, loudly.
func placeRecipient(cfg *config.Config, log *slog.Logger, env *messages.Envelope, rc *messages.Recipient) string {
	e := envFor(env, rc, "")
	name, err := cfg.Queue.Strategy.Schedule.Eval(&e)
	sched, ok := cfg.Queue.Schedule[name]
	if err != nil || !ok || !validQueue(cfg, sched.Queue) {
		log.Error("schedule strategy failed; using queue default", "msgid", env.ID.String(), "rcpt", rc.Addr, "err", err, "schedule", name)
		return "default"
	}
	return sched.Queue
}

// envFor builds the expression context for one recipient.
func envFor(env *messages.Envelope, rc *messages.Recipient, queue string) expression.Env {
	e := expression.For(env, rc)
	e.QueueName = queue
	return e
}
