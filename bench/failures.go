package main

import (
	"context"
	"fmt"
	"time"
)

// windowMeasure explains the rate -scenario failures compares.
const windowMeasure = "delivered/s over the first-attempt phase: recipients delivered from the start of " +
	"the injection until every accepted recipient has had its first attempt at the sink (its delivery, " +
	"or its 451 or 550), divided by that time; retries that land inside the window count. Both passes " +
	"use this window. The failing pass loses at most the 451 and 550 shares of its first attempts, so " +
	"a ratio under 1 - those shares means the failures cost mtad throughput beyond their share. The " +
	"window should last several retry intervals: a shorter one holds few retries, and the ratio of an " +
	"unaffected mtad sits right at the threshold."

// minWindowRetries is the shortest clean window, in retry intervals, that
// the ratio is trusted for without a warning.
const minWindowRetries = 3

// failuresStats is what -scenario failures measured.
type failuresStats struct {
	TempShare float64    `json:"temp_share"`
	PermShare float64    `json:"perm_share"`
	Retry     string     `json:"retry"`
	Clean     *passStats `json:"clean"`
	Failing   *passStats `json:"failing"`
	Ratio     *float64   `json:"ratio"` // failing rate / clean rate
	Threshold float64    `json:"ratio_threshold"`
	Measure   string     `json:"measure"`
}

// passStats is one pass of -scenario failures.
type passStats struct {
	Phase             *phaseStats   `json:"phase"`
	Window            windowStats   `json:"window"`
	Deferred          int64         `json:"deferred_recipients"` // accepted recipients of the 451-once class
	DeferredDelivered int64         `json:"deferred_delivered"`
	RetryDelay        latencyStats  `json:"retry_delay"` // first 451 to delivery
	PeakRSSKiB        *int64        `json:"mtad_peak_rss_kib"`
	Journal           *journalStats `json:"journal"`
	Exit              string        `json:"mtad_exit"`
}

// windowStats is the first-attempt phase of a pass (see windowMeasure).
type windowStats struct {
	Seconds   float64 `json:"seconds"`
	Delivered int64   `json:"delivered"`           // within the window
	FirstTry  int64   `json:"delivered_first_try"` // of which on their first attempt
	Complete  bool    `json:"complete"`            // every accepted recipient had its first attempt
	Rate      float64 `json:"delivered_per_second"`
}

// runFailures runs a clean pass and a pass with the sink failing shares
// of the recipients, each against a fresh mtad with a short retry.
func runFailures(ctx context.Context, r *rig) error {
	cfg := r.cfg
	fs := &failuresStats{TempShare: cfg.tempFail, PermShare: cfg.permFail, Retry: failuresRetry,
		Threshold: 1 - cfg.tempFail - cfg.permFail, Measure: windowMeasure}
	r.rep.Failures = fs
	conf, err := r.writeConf(ctx, scenarioFailures, mtadConf{retry: []string{failuresRetry}, expire: longExpiry})
	if err != nil {
		return err
	}
	if fs.Clean, err = r.failuresPass(ctx, conf, "clean", 0, 0); err != nil {
		return fmt.Errorf("clean pass: %w", err)
	}
	if fs.Failing, err = r.failuresPass(ctx, conf, "failing", cfg.tempFail, cfg.permFail); err != nil {
		return fmt.Errorf("failing pass: %w", err)
	}
	r.judgeFailures(fs)
	return nil
}

// failuresPass runs one pass on a fresh data directory. The failing pass
// is the one profiled.
func (r *rig) failuresPass(ctx context.Context, conf, label string, temp, perm float64) (*passStats, error) {
	cfg := r.cfg
	p, err := newPlan(cfg.n, cfg.size, cfg.rcpts, cfg.domains, temp, perm)
	if err != nil {
		return nil, err
	}
	l := newLedger(p)
	s, err := startSink(cfg.sinkListen, l)
	if err != nil {
		return nil, err
	}
	defer s.close()
	dataDir, removeData, err := r.dataDir(false)
	if err != nil {
		return nil, err
	}
	defer removeData()
	var prof *profiler
	if temp+perm > 0 {
		prof = r.prof
	}
	d, err := r.startMtad(ctx, conf, dataDir, s.addr(), "mtad-"+label+".log", prof != nil)
	if err != nil {
		return nil, err
	}
	defer d.stop() // a no-op once endMtad has stopped it
	runPhase(ctx, l, d.listen, cfg.conc, r.env, label, d, prof)
	end := r.endMtad(ctx, d, nil)
	st := collect(l)
	r.rep.judge(label+" pass: ", &st)
	ps := &passStats{Phase: &st, Window: firstAttemptWindow(l), PeakRSSKiB: end.hwm, Journal: end.journal, Exit: end.exit}
	ps.Deferred, ps.DeferredDelivered, ps.RetryDelay = retries(l)
	return ps, nil
}

// firstAttemptWindow measures l's first-attempt phase (see windowMeasure).
// A recipient's first attempt ends with its delivery when the sink accepts
// it at once, else with the sink's answer to its first RCPT.
func firstAttemptWindow(l *ledger) windowStats {
	var w windowStats
	start, end := l.injectStart.Load(), int64(0)
	w.Complete = true
	for slot := range l.state {
		if !l.attempted(slot) {
			continue
		}
		at := l.firstRcptAt[slot].Load()
		if l.plan.class(slot) == classOK {
			at = l.deliveredAt[slot].Load()
		}
		if at == 0 {
			w.Complete = false
		}
		end = max(end, at)
	}
	for slot := range l.state {
		at := l.deliveredAt[slot].Load()
		if l.state[slot].Load()&bitExpected == 0 || at == 0 || at > end {
			continue
		}
		w.Delivered++
		if l.plan.class(slot) == classOK {
			w.FirstTry++
		}
	}
	if end > start {
		w.Seconds = seconds(end - start)
		w.Rate = rate(w.Delivered, w.Seconds)
	}
	return w
}

// attempted reports whether mtad took slot's recipient: the sink is
// expected to see it, with a delivery or a 550.
func (l *ledger) attempted(slot int) bool {
	if l.state[slot].Load()&bitExpected != 0 {
		return true
	}
	return l.plan.class(slot) == classPerm && l.acceptedAt[slot/l.plan.rcpts].Load() != 0
}

// retries counts the accepted recipients of the 451-once class, those of
// them delivered, and the delays from their 451 to their delivery.
func retries(l *ledger) (deferred, delivered int64, delay latencyStats) {
	var ds []time.Duration
	for slot := range l.state {
		if l.plan.class(slot) != classTemp || l.state[slot].Load()&bitExpected == 0 {
			continue
		}
		deferred++
		at, first := l.deliveredAt[slot].Load(), l.firstRcptAt[slot].Load()
		if at == 0 {
			continue
		}
		delivered++
		if first != 0 && at > first {
			ds = append(ds, time.Duration(at-first))
		}
	}
	return deferred, delivered, summarise(ds)
}

// judgeFailures records the broken promises: the failing pass slower than
// its shares allow, a deferred recipient that did not arrive.
func (r *rig) judgeFailures(fs *failuresStats) {
	if fs.Clean.Window.Rate > 0 {
		ratio := fs.Failing.Window.Rate / fs.Clean.Window.Rate
		fs.Ratio = &ratio
	}
	switch {
	case fs.Ratio == nil:
		r.fail("no clean delivered/s to compare with")
	case *fs.Ratio < fs.Threshold:
		r.fail("failing pass delivered/s %.1f is %.3f of the clean pass's %.1f < %.2f",
			fs.Failing.Window.Rate, *fs.Ratio, fs.Clean.Window.Rate, fs.Threshold)
	}
	if f := fs.Failing; f.DeferredDelivered < f.Deferred {
		r.fail("%d of %d deferred recipients did not arrive on their retry", f.Deferred-f.DeferredDelivered, f.Deferred)
	}
	for _, p := range []*passStats{fs.Clean, fs.Failing} {
		if !p.Window.Complete {
			r.rep.Warnings = append(r.rep.Warnings, "a pass ended before every recipient had its first attempt: its window is cut short")
		}
	}
	retry, _ := time.ParseDuration(fs.Retry)
	if w := fs.Clean.Window.Seconds; w < minWindowRetries*retry.Seconds() {
		r.rep.Warnings = append(r.rep.Warnings, fmt.Sprintf("the clean window lasted %.1f s, under %d retry intervals (%s): few retries fall inside it and the ratio is at the threshold even for an unaffected mtad; raise -n", w, minWindowRetries, fs.Retry))
	}
}

// rows prints the failures section of the report.
func (fs *failuresStats) rows(row func(k, f string, a ...any)) {
	row("sink failures", "%.0f%% 451 once, %.0f%% 550 (failing pass); mtad retry %s", 100*fs.TempShare, 100*fs.PermShare, fs.Retry)
	fs.Clean.rows(row, "clean pass")
	fs.Failing.rows(row, "failing pass")
	row("failing / clean delivered/s", "%s (promise: >= %.2f)", optText(fs.Ratio, "%.3f"), fs.Threshold)
	row("measure", "%s", fs.Measure)
}

func (p *passStats) rows(row func(k, f string, a ...any), label string) {
	if p == nil {
		return
	}
	s, w := p.Phase, p.Window
	row(label, "accepted %d/%d at %.1f/s; delivered %d of %d expected (missing %d, duplicates %d); sink 451/550 %d/%d",
		s.Accepted, s.Planned, s.AcceptRate, s.Delivered, s.Expected, s.Missing, s.Duplicates, s.TempFails, s.PermFails)
	row("  first-attempt window", "%.1f delivered/s (%d delivered, %d of them on the first try, in %.3f s)", w.Rate, w.Delivered, w.FirstTry, w.Seconds)
	if p.Deferred > 0 {
		row("  deferred recipients", "%d, arrived on retry %d; 451->delivered %s", p.Deferred, p.DeferredDelivered, latencyText(p.RetryDelay))
	}
	row("  mtad peak RSS (VmHWM)", "%s", rssText(p.PeakRSSKiB))
	p.Journal.rows(func(k, f string, a ...any) { row("  "+k, f, a...) })
}
