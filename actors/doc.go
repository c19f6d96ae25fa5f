// Package actors is mtad's delivery engine: the actor tree
//
//	root (dispatcher) → queue actor per virtual queue → destination actor per
//	destination (spawned on demand, stopped when idle) → connection actor per
//	SMTP/LMTP session
//
// built on github.com/asynkron/protoactor-go.
//
// Ownership. Each actor's fields are touched only on its own goroutine
// (inside Receive). Blocking work — journal writes, DNS, network I/O — runs
// in goroutines that report back to the actor as messages; those goroutines
// capture the actor's PID and the system's root context before they start
// and never touch actor state.
//
// Durability. The queue actor writes a recipient's new state to the journal
// before it acts on it (reschedules, forgets, reports). A crash therefore
// loses nothing that recovery (Engine.Recover) cannot rebuild; it may repeat
// only deliveries that were in flight.
//
// Supervision. Root restarts a crashed queue actor, which then reloads its
// recipients from the journal. Queue and destination actors stop (never
// restart) crashed children and rebuild from what they still hold: a
// destination's outstanding jobs go back to the ready list, a connection's
// in-flight job is reported as a temporary failure and retried by the
// queue's schedule. Retrying mail is queue logic, never supervision backoff.
//
// Backpressure. The queue actor holds ready work per destination and sends
// a destination at most two jobs per allowed connection; a destination
// hands a job to a connection only when that connection says it is ready.
// Mailboxes are unbounded, but the work in them is bounded by these credits.
package actors
