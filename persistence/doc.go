// Package persistence is mtad's journal: the durable store of every
// accepted message, its body, its envelope and the delivery state of each
// recipient, kept in Pebble (github.com/cockroachdb/pebble/v2) in one data
// directory.
//
// # What is durable when
//
// A write that returned nil survives a crash: Accept, Update and Finish
// each commit one batch with a synced WAL write (pebble.Sync) before they
// return, and the batch is atomic, so after a crash a message is either
// wholly there or wholly absent, and a recipient has either its old state
// or its new one. Reply 250 only after Accept returned; act on a delivery
// result only after the Update that records it returned. A read (Body,
// Load, Stats) may see a batch that another goroutine committed but whose
// sync has not finished: do not act on data whose own write has not
// returned.
//
// NextID never returns an id twice, not even across restarts after every
// message was finished: see the high-water mark in ids.go.
//
// # Who may call what
//
// Open returns a Journal that is safe for concurrent use. Accept, Update,
// Finish, Body, Stats and NextID may be called from any number of
// goroutines at once; concurrent Accept, Update and Finish calls share
// fsyncs through Pebble's commit pipeline, so the way to go fast is many
// goroutines committing at once, never one goroutine committing message
// after message. They block on disk I/O: actors call them from a goroutine
// of their own, never on their mailbox. The owner of a message (its queue
// actor) serializes the calls about it: Accept once, then Update any
// number of times, then Finish once; an Update racing the Finish of the
// same message could leave recipient records behind, which Load skips.
// Load is for start-up recovery, before the daemon takes new mail. Close
// waits for calls in flight; later calls return ErrClosed.
//
// Open takes an exclusive flock on mtad.lock in the data directory, which
// holds the holder's pid, so a second mtad (or a second Open in this
// process) fails at once with an error wrapping ErrLocked and naming the
// directory and pid. The kernel drops the lock when the process dies.
//
// # On disk
//
// Keys are a one-byte prefix and big-endian integers (see keys.go): 'b'
// id for the raw body, 'e' id for the envelope, 'r' id index for each
// recipient, 'm' name for metadata. Envelope and recipient records are a
// version byte followed by a compact binary encoding (see codec.go).
// Finished messages are deleted at once: body and envelope with
// SingleDelete, being written once, recipient records with Delete.
//
// The Pebble format is pinned to pebbleFormat (pebble.FormatValueSeparation
// as of Pebble v2.1.7). Value separation itself is not enabled yet: it is
// experimental in Pebble, and worth turning on for long-deferred bodies
// once a soak test has passed. The memtable is 64 MiB by default, so that a
// message delivered within minutes is deleted before its body is flushed
// and costs one WAL write only.
package persistence
