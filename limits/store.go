package limits

import "time"

// Store is the shaping state shared by everything that computes the same
// key. Memory is the in-process implementation; one shared between nodes
// (Redis) implements the same interface. Its methods are safe for concurrent
// use and never wait for a limit to allow something.
type Store interface {
	// Take takes one event from the rate r of key at now. ok means go now
	// (retryAt is then now). Otherwise nothing is taken and retryAt is the
	// earliest time one event may be allowed: the caller sets a timer for it.
	// The zero Rate allows every event (an adjustment still applies).
	Take(key string, r Rate, now time.Time) (ok bool, retryAt time.Time)

	// Acquire takes one of the max concurrency slots of key at now; false
	// means all are taken, and the caller tries again later. A max
	// below 1 caps nothing (slots are still counted). Every true Acquire is
	// paired with one Release.
	Acquire(key string, max int, now time.Time) bool

	// Release gives back a slot of key; with none held it does nothing.
	Release(key string)

	// Adjust scales the rate and the concurrency of key until until
	// (response-driven shaping): factor 0 suspends the key, 0.5 halves it.
	// Factors are clamped to [0, 1]; a later Adjust replaces an earlier one,
	// and factor 1 lifts it.
	Adjust(key string, factor float64, until time.Time)

	// Adjusted reports the adjustment of key in force at now, and when it
	// ends: factor 1 and the zero time when there is none.
	Adjusted(key string, now time.Time) (factor float64, until time.Time)
}

var _ Store = (*Memory)(nil)
