// Package webhook POSTs delivery-log events (deliverylog.Event) to the
// operator's HTTP endpoints in batches, and keeps them in the journal's
// outbox until the endpoint acknowledged them.
//
// # Flow
//
// Observe appends an event to an in-memory list and returns: it never
// blocks on the disk or the network and never drops, so the list is
// unbounded and holds what the journal has not taken yet (normally one
// fsync's worth; more only while the journal fails). One writer goroutine
// takes what has accumulated, gives each event an id, marshals it once and
// appends it to the outbox of every endpoint whose Events filter matches,
// one synced AppendOutbox per endpoint per round, so a burst of events
// costs a few fsyncs. One sender goroutine per endpoint reads its outbox
// in order and POSTs batches of up to BatchSize events, a partial batch
// once it has waited FlushInterval; at most one POST is in flight per
// endpoint. A 2xx answer acknowledges the batch, which is then deleted
// from the outbox. Anything else (another status, a transport error, the
// Timeout) repeats the same batch after a backoff doubling from MinBackoff
// to MaxBackoff, with jitter, for as long as it takes: the outbox holds
// the events meanwhile, and later batches wait behind it.
//
// # What is durable when
//
// An event Observe accepted is in memory until the writer's next synced
// append, normally a few milliseconds later: a crash or SIGKILL in that
// window loses it. Once appended it survives a crash, and New resumes
// sending from what the outbox holds. Close writes every event Observe
// accepted before it returned, so a graceful shutdown loses none (unless
// the journal fails, which Close reports).
//
// Delivery is at least once: a crash after the receiver accepted a batch
// and before the acknowledgement was committed sends the batch again after
// the restart. Every event carries an "id", the same for every endpoint and
// every resend; receivers deduplicate by it.
//
// # The POST
//
// The body is a JSON object whose "events" member is an array of events,
// each a deliverylog.Event as the delivery log writes it plus the id:
//
//	{"events":[{"id":"m2x7k1q9a8-1","time":"2026-03-14T15:09:26.5Z","event":"delivered","msgid":"...","rcpt":"a@example.net",...}]}
//
// with Content-Type application/json and the endpoint's Headers.
//
// # Logs and metrics
//
// An endpoint that fails is logged once per outage at warn, or at error
// when it answers a 4xx other than 408 and 429 (the receiver rejects what
// we send: it is still retried, as the operator may fix the receiver), and
// once at info when it is back. Collectors returns the metrics.
//
// # Who may call what
//
// Observe may be called from any goroutine, including actors', at any
// time; after Close it does nothing. Close once, before closing the Store.
// A nil *Dispatcher accepts Observe and Close and does nothing.
package webhook
