package persistence

import (
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
)

// exit ends the process after Pebble reports a fatal error; tests replace it.
var exit = os.Exit

// pebbleLogger routes Pebble's log lines into slog. Pebble's Infof lines
// (WAL and table housekeeping) go to Debug, so that a daemon logging at
// Info or Warn sees only Pebble's errors and the events eventListener
// raises to Warn and Error.
type pebbleLogger struct{ log *slog.Logger }

var _ pebble.Logger = pebbleLogger{}

func (l pebbleLogger) Infof(format string, args ...any) {
	l.log.Debug(fmt.Sprintf(format, args...))
}

func (l pebbleLogger) Errorf(format string, args ...any) {
	l.log.Error(fmt.Sprintf(format, args...))
}

// Fatalf must not return: Pebble calls it when its own state can no longer
// be trusted (a failed WAL write, a failed MANIFEST sync). Like Pebble's
// default logger we end the process; recovery is a restart, which replays
// the journal.
func (l pebbleLogger) Fatalf(format string, args ...any) {
	l.log.Error(fmt.Sprintf(format, args...), "fatal", true)
	exit(1)
}

// eventListener logs the Pebble events an operator must hear about: errors
// at Error, stalls and slow disks at Warn. API misuse (an ineffectual or
// nondeterministic SingleDelete) is a bug in this package and logged at
// Error.
func eventListener(log *slog.Logger, misuse *atomic.Int64) *pebble.EventListener {
	return &pebble.EventListener{
		BackgroundError: func(err error) {
			log.Error("pebble background error", "err", err)
		},
		WriteStallBegin: func(info pebble.WriteStallBeginInfo) {
			log.Warn("pebble write stall", "reason", info.Reason)
		},
		WriteStallEnd: func() { log.Warn("pebble write stall ended") },
		DiskSlow: func(info pebble.DiskSlowInfo) {
			log.Warn("pebble disk slow", "info", info.String())
		},
		PossibleAPIMisuse: func(info pebble.PossibleAPIMisuseInfo) {
			misuse.Add(1)
			log.Error("pebble api misuse", "info", info.String())
		},
	}
}

// discardLogger is used when Options.Logger is nil.
func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
