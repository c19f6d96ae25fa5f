package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
)

// Progress refresh intervals: the bar on a terminal, plain lines elsewhere.
const (
	barRefresh  = 200 * time.Millisecond
	lineRefresh = 2 * time.Second
)

// isTerminal reports whether f is a character device, which is what a
// progress bar needs; pipes and files get plain lines.
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// startProgress shows the accepted and delivered counts of l on w until
// the returned stop is called (once). A nil w shows nothing.
func startProgress(l *ledger, label string, w io.Writer, tty bool) (stop func()) {
	if w == nil {
		return func() {}
	}
	quit, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		if tty {
			showBar(l, label, w, quit)
		} else {
			showLines(l, label, w, quit)
		}
	}()
	return func() {
		close(quit)
		<-finished
	}
}

// showBar runs a progress bar of deliveries until quit is closed.
func showBar(l *ledger, label string, w io.Writer, quit <-chan struct{}) {
	bar := progressbar.NewOptions64(int64(max(l.plan.deliverable(), 1)), // 0 would mean "unknown"
		progressbar.OptionSetWriter(w),
		progressbar.OptionShowCount(),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(barRefresh),
		progressbar.OptionSetPredictTime(false),
		progressbar.OptionSetElapsedTime(true),
	)
	t := time.NewTicker(barRefresh)
	defer t.Stop()
	for {
		bar.Describe(fmt.Sprintf("%s: accepted %d/%d, delivered", label, l.accepted.Load(), l.plan.n))
		_ = bar.Set64(l.done.Load())
		select {
		case <-t.C:
		case <-quit:
			_ = bar.Exit()
			_ = bar.Clear()
			fmt.Fprintln(w, progressLine(l, label)) // the final count stays on screen
			return
		}
	}
}

// showLines prints a progress line every lineRefresh and a last one when
// quit is closed.
func showLines(l *ledger, label string, w io.Writer, quit <-chan struct{}) {
	t := time.NewTicker(lineRefresh)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			fmt.Fprintln(w, progressLine(l, label))
		case <-quit:
			fmt.Fprintln(w, progressLine(l, label))
			return
		}
	}
}

func progressLine(l *ledger, label string) string {
	line := fmt.Sprintf("%s: %6.1fs  accepted %d/%d  delivered %d/%d",
		label, time.Since(l.clock.start).Seconds(),
		l.accepted.Load(), l.plan.n, l.done.Load(), l.expected.Load())
	if n := l.deferred.Load(); n > 0 {
		line += fmt.Sprintf("  deferred by the sink %d", n)
	}
	return line
}
