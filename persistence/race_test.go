//go:build race

package persistence

// raceEnabled: Pebble, under the race detector, allocates its memtables
// and caches on the Go heap half the time, which memory tests cannot tell
// from ours.
const raceEnabled = true
