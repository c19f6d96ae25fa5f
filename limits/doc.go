// Package limits is the shaping state that destination actors consult
// before they send a message or open a connection: rates (N events per
// period) and concurrency (slots in flight) per key, shared by every
// destination that computes the same key (per local_ip, per sender, per
// site...), and the temporary adjustments that response-driven shaping puts
// on them.
//
// The contract:
//
//   - Nothing waits. Take answers "go" or "not before retryAt", and a
//     refused Take takes nothing, so the caller sets a timer for retryAt
//     instead of polling. retryAt is exact: the limiter allows one event at
//     retryAt and not a nanosecond before, unless others took it in between.
//     (x/time truncates waits to whole nanoseconds, so that instant may be
//     1 ns before the ideal one.)
//     Acquire answers true or false; there is no time at which a slot is
//     sure to free up, so the caller tries again when one of its own
//     connections ends or, for a key shared with other destinations, on a
//     short timer of its own.
//   - Time is the caller's: every call that needs it takes now, so tests
//     drive a Store with explicit times and no sleeps. For one key, a now
//     earlier than one already seen counts as that time.
//   - A key names one rate and one concurrency: build it with Key from the
//     limit's name and its key fields, and give a message rate and a
//     connection rate of one limit different names. A key keeps the Rate it
//     was last taken with.
//   - A rate of N per Per allows a burst of max(1, N/10) from idle and then
//     one event every Per/N (a token bucket, golang.org/x/time/rate), so it
//     holds within 10% over any window of Per or longer.
//   - Adjust scales a key until a given time, then the adjustment ends by
//     itself. Factor 0 suspends the key: Take refuses with retryAt = until
//     and Acquire refuses. A factor f in (0, 1) makes the rate floor(N×f) per
//     Per and the concurrency floor(max×f), each at least 1. Adjustments only
//     slow a key down.
//   - Memory is bounded by the keys in use: a key is forgotten once it holds
//     no slot, no adjustment in force, and its rate has been unused for
//     2×Per and at least a minute, by which time its bucket is full again, so
//     forgetting it changes no answer.
//
// Memory is the in-process Store. A Store shared between nodes (Redis, as
// KumoMTA does it) implements the same interface; it is expected to answer
// from local state without a network round trip per call, because actors
// call it on their own goroutines.
package limits
