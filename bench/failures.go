package main

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
)

// windowMeasure explains the rate -scenario failures compares.
const windowMeasure = "delivered/s over the first-attempt phase: recipients delivered from the start of " +
	"the injection until every accepted recipient has had its first attempt at the sink (its delivery, " +
	"or its 451 or 550), divided by that time; retries that land inside the window count. Every pass " +
	"uses this window. Clean and failing passes are interleaved in ABBA order (clean, failing, failing, " +
	"clean, ...) so the drift of a shared machine weighs on both kinds alike, and each kind's rate is " +
	"pooled: the deliveries of its passes' windows over their total seconds. The failing passes lose at " +
	"most the 451 and 550 shares of their first attempts, so a pooled ratio under 1 - those shares means " +
	"the failures cost mtad throughput beyond their share; the pair ratios (i-th failing pass over i-th " +
	"clean pass) show the spread. Each window should last several retry intervals: a shorter one holds " +
	"few retries, and the ratio of an unaffected mtad sits right at the threshold."

// minWindowRetries is the shortest clean window, in retry intervals, that
// the ratio is trusted for without a warning.
const minWindowRetries = 3

// The kinds of pass of -scenario failures.
const (
	passClean   = "clean"
	passFailing = "failing"
)

// failuresStats is what -scenario failures measured.
type failuresStats struct {
	TempShare  float64      `json:"temp_share"`
	PermShare  float64      `json:"perm_share"`
	Retry      string       `json:"retry"`
	Pairs      int          `json:"pairs"`
	Clean      []*passStats `json:"clean"`       // in the order they ran
	Failing    []*passStats `json:"failing"`     // in the order they ran
	Ratio      *float64     `json:"ratio"`       // pooled failing rate / pooled clean rate
	PairRatios []float64    `json:"pair_ratios"` // Failing[i] rate / Clean[i] rate; 0 when Clean[i]'s is 0
	Threshold  float64      `json:"ratio_threshold"`
	Measure    string       `json:"measure"`
}

// passStats is one pass of -scenario failures.
type passStats struct {
	Label             string        `json:"label"` // "clean pass 1"
	Run               int           `json:"run"`   // its place in the run, from 1
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

// passSpec is one pass to run: its kind, its number among the passes of
// that kind (from 1), the sink's failure shares and whether mtad is
// profiled.
type passSpec struct {
	kind       string
	n          int
	temp, perm float64
	profiled   bool
}

func (s passSpec) label() string { return fmt.Sprintf("%s pass %d", s.kind, s.n) }

// abbaOrder lists the 2*pairs passes in the order they run, true for a
// failing pass: clean, failing, then failing, clean, and again, so that a
// drift of the machine over the run weighs on both kinds alike. Pair i is
// the i-th clean pass with the i-th failing one, run next to each other.
func abbaOrder(pairs int) []bool {
	order := make([]bool, 0, 2*pairs)
	for i := range pairs {
		failingFirst := i%2 == 1
		order = append(order, failingFirst, !failingFirst)
	}
	return order
}

// runFailures runs -pairs clean passes and as many with the sink failing
// shares of the recipients, in ABBA order, each against a fresh mtad with
// a short retry.
func runFailures(ctx context.Context, r *rig) error {
	cfg := r.cfg
	fs := &failuresStats{TempShare: cfg.tempFail, PermShare: cfg.permFail, Retry: failuresRetry, Pairs: cfg.pairs,
		Threshold: 1 - cfg.tempFail - cfg.permFail, Measure: windowMeasure}
	r.rep.Failures = fs
	conf, err := r.writeConf(ctx, scenarioFailures, mtadConf{retry: []string{failuresRetry}, expire: longExpiry})
	if err != nil {
		return err
	}
	for _, failing := range abbaOrder(cfg.pairs) {
		if err := r.nextFailuresPass(ctx, fs, conf, failing); err != nil {
			return err
		}
	}
	r.judgeFailures(fs)
	return nil
}

// nextFailuresPass runs the next pass of its kind and appends it to fs.
// The first failing pass is the one profiled.
func (r *rig) nextFailuresPass(ctx context.Context, fs *failuresStats, conf string, failing bool) error {
	spec := passSpec{kind: passClean, n: len(fs.Clean) + 1}
	if failing {
		spec = passSpec{kind: passFailing, n: len(fs.Failing) + 1, temp: r.cfg.tempFail, perm: r.cfg.permFail}
		spec.profiled = spec.n == 1
	}
	ps, err := r.failuresPass(ctx, conf, spec)
	if err != nil {
		return fmt.Errorf("%s: %w", spec.label(), err)
	}
	ps.Run = len(fs.Clean) + len(fs.Failing) + 1
	if failing {
		fs.Failing = append(fs.Failing, ps)
	} else {
		fs.Clean = append(fs.Clean, ps)
	}
	return nil
}

// failuresPass runs one pass on a fresh data directory, with its own
// sink and ledger.
func (r *rig) failuresPass(ctx context.Context, conf string, spec passSpec) (*passStats, error) {
	l, st, end, err := r.measuredPass(ctx, passRun{size: r.cfg.size, temp: spec.temp, perm: spec.perm,
		conf: conf, logName: fmt.Sprintf("mtad-%s-%d.log", spec.kind, spec.n),
		label: spec.label(), judged: spec.label() + ": ", profiled: spec.profiled})
	if err != nil {
		return nil, err
	}
	ps := &passStats{Label: spec.label(), Phase: st, Window: firstAttemptWindow(l),
		PeakRSSKiB: end.hwm, Journal: end.journal, Exit: end.exit}
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

// judgeFailures records the broken promises: the failing passes slower,
// pooled, than their shares allow, a deferred recipient that did not
// arrive; and warns of windows the ratio is not to be trusted on.
func (r *rig) judgeFailures(fs *failuresStats) {
	fs.compare()
	switch {
	case fs.Ratio == nil:
		r.fail("no clean delivered/s to compare with")
	case *fs.Ratio < fs.Threshold:
		r.fail("failing passes' delivered/s %.1f is %.3f of the clean passes' %.1f < %.2f (pooled over %s; pair ratios %s)",
			pooledRate(fs.Failing), *fs.Ratio, pooledRate(fs.Clean), fs.Threshold, pairsText(fs.Pairs), ratiosText(fs.PairRatios))
	}
	for i, f := range fs.Failing {
		if f.DeferredDelivered < f.Deferred {
			r.fail("failing pass %d: %d of %d deferred recipients did not arrive on their retry",
				i+1, f.Deferred-f.DeferredDelivered, f.Deferred)
		}
	}
	r.warnWindows(fs)
}

// compare sets the pooled ratio, nil when the clean passes delivered
// nothing in their windows, and each pair's own ratio.
func (fs *failuresStats) compare() {
	if clean := pooledRate(fs.Clean); clean > 0 {
		ratio := pooledRate(fs.Failing) / clean
		fs.Ratio = &ratio
	}
	fs.PairRatios = []float64{}
	for i := range min(len(fs.Clean), len(fs.Failing)) {
		var ratio float64
		if clean := fs.Clean[i].Window.Rate; clean > 0 {
			ratio = fs.Failing[i].Window.Rate / clean
		}
		fs.PairRatios = append(fs.PairRatios, ratio)
	}
}

// pooled sums the windows of passes.
func pooled(passes []*passStats) (delivered int64, secs float64) {
	for _, p := range passes {
		delivered += p.Window.Delivered
		secs += p.Window.Seconds
	}
	return delivered, secs
}

// pooledRate is the delivered/s of passes taken together: the deliveries
// of their windows over their total seconds, so a longer window weighs
// more than a shorter one.
func pooledRate(passes []*passStats) float64 {
	return rate(pooled(passes))
}

// warnWindows warns of a window cut short, in any pass, and of clean
// windows too short to hold several retries (once, for the shortest).
func (r *rig) warnWindows(fs *failuresStats) {
	for _, k := range []struct {
		kind   string
		passes []*passStats
	}{{passClean, fs.Clean}, {passFailing, fs.Failing}} {
		for i, p := range k.passes {
			if !p.Window.Complete {
				r.rep.Warnings = append(r.rep.Warnings, fmt.Sprintf("%s pass %d ended before every recipient had its first attempt: its window is cut short", k.kind, i+1))
			}
		}
	}
	if len(fs.Clean) == 0 {
		return
	}
	shortest := slices.MinFunc(fs.Clean, func(a, b *passStats) int { return cmp.Compare(a.Window.Seconds, b.Window.Seconds) })
	retry, _ := time.ParseDuration(fs.Retry)
	if w := shortest.Window.Seconds; w < minWindowRetries*retry.Seconds() {
		r.rep.Warnings = append(r.rep.Warnings, fmt.Sprintf("the shortest clean window lasted %.1f s, under %d retry intervals (%s): few retries fall inside it and the ratio is at the threshold even for an unaffected mtad; raise -n", w, minWindowRetries, fs.Retry))
	}
}

// rows prints the failures section of the report, the passes in the
// order they ran.
func (fs *failuresStats) rows(row func(k, f string, a ...any)) {
	row("sink failures", "%.0f%% 451 once, %.0f%% 550 (failing passes); mtad retry %s; %s in ABBA order",
		100*fs.TempShare, 100*fs.PermShare, fs.Retry, pairsText(fs.Pairs))
	passes := slices.Concat(fs.Clean, fs.Failing)
	slices.SortFunc(passes, func(a, b *passStats) int { return cmp.Compare(a.Run, b.Run) })
	for _, p := range passes {
		p.rows(row, fmt.Sprintf("%s (run %d of %d)", p.Label, p.Run, 2*fs.Pairs))
	}
	cd, cs := pooled(fs.Clean)
	fd, fsecs := pooled(fs.Failing)
	row("pooled windows", "clean %.1f delivered/s (%d in %.3f s), failing %.1f delivered/s (%d in %.3f s)",
		rate(cd, cs), cd, cs, rate(fd, fsecs), fd, fsecs)
	row("failing / clean delivered/s", "%s pooled over %s (pair ratios %s; promise: >= %.2f)",
		optText(fs.Ratio, "%.3f"), pairsText(fs.Pairs), ratiosText(fs.PairRatios), fs.Threshold)
	row("measure", "%s", fs.Measure)
}

func pairsText(n int) string {
	if n == 1 {
		return "1 pair"
	}
	return fmt.Sprintf("%d pairs", n)
}

func ratiosText(ratios []float64) string { return joinf(ratios, "%.3f") }

// joinf lists vals, each in format, comma-separated; "n/a" for none.
func joinf(vals []float64, format string) string {
	if len(vals) == 0 {
		return "n/a"
	}
	parts := make([]string, len(vals))
	for i, v := range vals {
		parts[i] = fmt.Sprintf(format, v)
	}
	return strings.Join(parts, ", ")
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
