// Package persistence is mtad's journal: the durable store of every
// accepted message, its body, its envelope and the delivery state of each
// recipient, kept in Pebble (github.com/cockroachdb/pebble/v2) in one data
// directory.
//
// # What is durable when
//
// A write that returned nil survives a crash: Accept, AcceptBody, Update
// and Finish each commit one batch with a synced WAL write (pebble.Sync)
// before they return, and the batch is atomic, so after a crash a message
// is either wholly there or wholly absent, and a recipient has either its
// old state or its new one. A body streamed in through a BodyWriter is
// committed a chunk at a time without a sync; AcceptBody's synced batch,
// which holds the last chunk and the envelope, makes the earlier chunks
// durable with it (see AcceptBody for why), and chunks whose message never
// got its envelope are deleted by the next Open. Defer is Update without
// the sync, for recipients deferred again: a crash may take it back (they
// are then tried again sooner) until a later synced write makes it
// durable. Reply 250 only after Accept or AcceptBody returned; act on a
// delivery result only after the Update that records it returned. A read (Body,
// Load, Stats) may see a batch that another goroutine committed but whose
// sync has not finished: do not act on data whose own write has not
// returned.
//
// NextID never returns an id twice, not even across restarts after every
// message was finished: see the high-water mark in ids.go.
//
// # Who may call what
//
// Open returns a Journal that is safe for concurrent use. Accept,
// AcceptBody, Update, Defer, Finish, NewBody, OpenBody, Body, BodyPrefix, Stats,
// WriteStats and NextID may be called from any number of goroutines at
// once (a BodyWriter or BodyReader itself belongs to one goroutine);
// concurrent Accept, AcceptBody, Update and Finish calls share fsyncs
// through Pebble's commit pipeline, so the way to go fast is many
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
// id chunk for the raw body in chunks of 256 KiB, 'e' id for the envelope,
// 'r' id index for each recipient, 'p' id for a body being streamed, 'm'
// name for metadata. A body written before bodies were chunked is one
// record, 'b' id; it is read, streamed and deleted like a chunked one.
// Envelope and recipient records are a version byte followed by a compact
// binary encoding (see codec.go). Finished messages are deleted at once:
// body chunks and envelope with SingleDelete, being written once, recipient
// records with Delete.
//
// Bodies stream both ways: NewBody and AcceptBody take one in holding one
// chunk, OpenBody gives one out holding one chunk, so a 50 MiB message
// never sits whole in the heap here. Body copies a body out whole and
// BodyPrefix its first n bytes, for DSNs.
//
// The Pebble format is pinned to pebbleFormat (pebble.FormatValueSeparation
// as of Pebble v2.1.7); Open ratchets an older store up to it. The memtable
// is 64 MiB by default (Pebble starts at 256 KiB and doubles it at each
// rotation up to that), so that a message delivered within minutes is
// deleted before its body is flushed: a flush drops a SET that meets its
// SINGLEDEL, and the message costs one WAL write only. Bodies that outlive
// their memtable are moved into blob files by value separation, so that
// compactions rewrite their keys and not the bodies (see tuning.go).
// WriteStats reports what all this writes.
package persistence
