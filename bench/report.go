package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// latencyStats summarises a set of durations; JSON in milliseconds.
type latencyStats struct {
	Count int     `json:"count"`
	P50   float64 `json:"p50_ms"`
	P99   float64 `json:"p99_ms"`
	Max   float64 `json:"max_ms"`
}

// phaseStats is what one phase measured. Counts of messages unless named
// otherwise; "slots" are message recipients.
type phaseStats struct {
	Planned        int    `json:"planned"`
	Injected       int64  `json:"injected"`
	Accepted       int64  `json:"accepted"`
	Rejected       int64  `json:"rejected"`
	Errors         int64  `json:"errors"`
	ConnFailures   int64  `json:"conn_failures"`
	RcptsAccepted  int64  `json:"rcpts_accepted"`
	RcptsRejected  int64  `json:"rcpts_rejected"`
	Expected       int64  `json:"deliveries_expected"`
	Delivered      int64  `json:"deliveries_done"`
	Missing        int64  `json:"deliveries_missing"`
	Unexpected     int64  `json:"deliveries_unexpected"`
	Complete       int64  `json:"messages_delivered"`
	Duplicates     int64  `json:"duplicates"`
	TempFails      int64  `json:"sink_temp_fails"`
	PermFails      int64  `json:"sink_perm_fails"`
	Foreign        int64  `json:"sink_foreign"`
	Malformed      int64  `json:"sink_malformed"`
	SinkSessions   int64  `json:"sink_sessions"`
	SinkMessages   int64  `json:"sink_messages"`
	SinkDeliveries int64  `json:"sink_deliveries"`
	Deferred       int64  `json:"sink_deferred"`        // RCPTs answered 451 while the sink deferred everything
	SizeMismatches int64  `json:"sink_size_mismatches"` // bench messages whose body was not the size sent
	FirstError     string `json:"first_error,omitempty"`
	FirstRejection string `json:"first_rejection,omitempty"`

	InjectSeconds  float64 `json:"inject_seconds"`
	AcceptRate     float64 `json:"accepted_per_second"`
	DeliverSeconds float64 `json:"deliver_seconds"`
	DeliverRate    float64 `json:"delivered_per_second"`

	AcceptToDelivered latencyStats `json:"accept_to_delivered"`
	SentToDelivered   latencyStats `json:"sent_to_delivered"`
	Early             int          `json:"delivered_before_250"`

	// CPU per delivered message, µs, from the injection's start to the
	// last delivery: the harness's (injector and sink) and mtad's (null
	// when no mtad was started here).
	HarnessCPUMicros float64  `json:"harness_cpu_us_per_message"`
	MtadCPUMicros    *float64 `json:"mtad_cpu_us_per_message"`
}

// ok reports whether every planned message was accepted and every
// expected delivery arrived.
func (s *phaseStats) ok() bool {
	return s.Accepted == int64(s.Planned) && s.Missing == 0 && s.Errors == 0
}

// collect summarises l. It may run while late deliveries still arrive;
// every read is atomic.
func collect(l *ledger) phaseStats {
	s := phaseStats{
		Planned: l.plan.n, Injected: l.injected.Load(), Accepted: l.accepted.Load(),
		Rejected: l.rejected.Load(), Errors: l.errors.Load(), ConnFailures: l.connFailures.Load(),
		RcptsAccepted: l.rcptsAccepted.Load(), RcptsRejected: l.rcptsRejected.Load(),
		Expected: l.expected.Load(), Duplicates: l.duplicates.Load(),
		TempFails: l.tempFails.Load(), PermFails: l.permFails.Load(), Foreign: l.foreign.Load(),
		Malformed: l.malformed.Load(), SinkSessions: l.sinkSessions.Load(),
		SinkMessages: l.sinkMessages.Load(), SinkDeliveries: l.deliveries.Load(),
		Deferred: l.deferred.Load(), SizeMismatches: l.sizeMismatches.Load(),
		FirstError: load(&l.firstError), FirstRejection: load(&l.firstRejection),
	}
	start, end := l.injectStart.Load(), l.injectEnd.Load()
	s.InjectSeconds = seconds(end - start)
	s.AcceptRate = rate(s.Accepted, s.InjectSeconds)
	last := collectSlots(l, &s)
	s.Complete = completeMessages(l)
	if last > 0 {
		s.DeliverSeconds = seconds(last - start)
		s.DeliverRate = rate(s.Complete, s.DeliverSeconds)
	}
	if s.Complete > 0 {
		s.HarnessCPUMicros = float64(l.harnessCPU.Load()) / 1e3 / float64(s.Complete)
		if ns := l.mtadCPU.Load(); ns > 0 {
			us := float64(ns) / 1e3 / float64(s.Complete)
			s.MtadCPUMicros = &us
		}
	}
	return s
}

// collectSlots counts deliveries and latencies by slot and returns the
// clock offset of the last expected delivery.
func collectSlots(l *ledger, s *phaseStats) (last int64) {
	var acc, sent []time.Duration
	for slot := range l.state {
		st := l.state[slot].Load()
		exp, del := st&bitExpected != 0, st&bitDelivered != 0
		switch {
		case exp && del:
			s.Delivered++
			at := l.deliveredAt[slot].Load()
			last = max(last, at)
			d := at - l.acceptedAt[slot/l.plan.rcpts].Load()
			if d < 0 {
				s.Early++ // mtad delivered before the injector read its 250
				d = 0
			}
			acc = append(acc, time.Duration(d))
			if v := l.sendLatency[slot].Load(); v != 0 {
				sent = append(sent, time.Duration(v))
			}
		case exp:
			s.Missing++
		case del:
			s.Unexpected++
		}
	}
	s.AcceptToDelivered, s.SentToDelivered = summarise(acc), summarise(sent)
	return last
}

// completeMessages counts accepted messages with at least one expected
// recipient whose expected recipients were all delivered.
func completeMessages(l *ledger) int64 {
	var n int64
	r := l.plan.rcpts
	for id := range l.plan.n {
		if l.acceptedAt[id].Load() == 0 {
			continue
		}
		some, all := false, true
		for slot := id * r; slot < (id+1)*r; slot++ {
			v := l.state[slot].Load()
			if v&bitExpected != 0 {
				some = true
				all = all && v&bitDelivered != 0
			}
		}
		if some && all {
			n++
		}
	}
	return n
}

func summarise(ds []time.Duration) latencyStats {
	if len(ds) == 0 {
		return latencyStats{}
	}
	slices.Sort(ds)
	return latencyStats{Count: len(ds), P50: ms(percentile(ds, 50)), P99: ms(percentile(ds, 99)), Max: ms(ds[len(ds)-1])}
}

// percentile is the nearest-rank percentile of sorted, for 0 < p <= 100:
// the smallest value with at least p percent of the values at or below it.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

func seconds(ns int64) float64   { return max(float64(ns), 0) / 1e9 }
func ms(d time.Duration) float64 { return float64(d) / 1e6 }

func rate(n int64, secs float64) float64 {
	if secs <= 0 {
		return 0
	}
	return float64(n) / secs
}

func load(p interface{ Load() *string }) string {
	if s := p.Load(); s != nil {
		return *s
	}
	return ""
}

// report is the outcome of a run, printed as text and, with -json, JSON.
type report struct {
	Started    time.Time   `json:"started"`
	Command    string      `json:"command"`
	Flags      string      `json:"flags"`
	Host       string      `json:"host"`
	Mode       string      `json:"mode"`
	Scenario   string      `json:"scenario,omitempty"`
	Main       *phaseStats `json:"main,omitempty"`
	Direct     *phaseStats `json:"direct,omitempty"`
	PeakRSSKiB *int64      `json:"mtad_peak_rss_kib"` // null when not measured
	MtadExit   string      `json:"mtad_exit,omitempty"`
	DirectRate *float64    `json:"direct_per_second"`
	RatioPct   *float64    `json:"ratio_percent"`
	OK         bool        `json:"ok"`
	Problems   []string    `json:"problems,omitempty"`
	Warnings   []string    `json:"warnings,omitempty"`

	Pairs *throughputPairs `json:"pairs,omitempty"` // throughput with -pairs above 1

	// Scenarios other than throughput.
	Backlog     *backlogStats     `json:"backlog,omitempty"`
	Recovery    *recoveryStats    `json:"recovery,omitempty"`
	Failures    *failuresStats    `json:"failures,omitempty"`
	Large       []*largeStats     `json:"large,omitempty"`
	MtadConfigs map[string]string `json:"mtad_configs,omitempty"` // the generated configurations, by name
	Profiles    []string          `json:"profiles,omitempty"`     // where the profiles went
	Failed      []string          `json:"failed,omitempty"`       // broken promises, each "FAIL: ..."
}

// throughputPairs are the phases of a throughput run with -pairs above 1,
// in the order they ran within each kind.
type throughputPairs struct {
	Direct     []*phaseStats `json:"direct"`
	Mtad       []*phaseStats `json:"mtad"`
	PairRatios []float64     `json:"pair_ratios_percent"` // i-th mtad phase over the i-th direct one
	DirectRate float64       `json:"direct_pooled_per_second"`
	MtadRate   float64       `json:"mtad_pooled_per_second"`
}

// add takes in the report of one mtad phase: its stats, the highest peak
// RSS, an exit that was not clean over one that was, its warnings and
// profiles.
func (tp *throughputPairs) add(r, one *report) {
	tp.Mtad = append(tp.Mtad, one.Main)
	if one.PeakRSSKiB != nil && (r.PeakRSSKiB == nil || *one.PeakRSSKiB > *r.PeakRSSKiB) {
		r.PeakRSSKiB = one.PeakRSSKiB
	}
	if r.MtadExit == "" || r.MtadExit == exitedCleanly {
		r.MtadExit = one.MtadExit
	}
	r.Warnings = append(r.Warnings, one.Warnings...)
	r.Profiles = append(r.Profiles, one.Profiles...)
}

// pool sets the pooled rates and the pair ratios.
func (tp *throughputPairs) pool() {
	tp.DirectRate, tp.MtadRate = pooledPhases(tp.Direct), pooledPhases(tp.Mtad)
	tp.PairRatios = nil
	for i := range min(len(tp.Direct), len(tp.Mtad)) {
		if d := tp.Direct[i].DeliverRate; d > 0 {
			tp.PairRatios = append(tp.PairRatios, 100*tp.Mtad[i].DeliverRate/d)
		}
	}
}

// rows prints the pairs under the pooled ratio.
func (tp *throughputPairs) rows(row func(k, f string, a ...any)) {
	row("  pooled", "over %s in ABBA order: mtad %.1f delivered/s, direct %.1f/s", pairsText(len(tp.Mtad)), tp.MtadRate, tp.DirectRate)
	row("  pair ratios", "%s", joinf(tp.PairRatios, "%.1f%%"))
	var cpu []string
	for _, p := range tp.Mtad {
		if p.MtadCPUMicros != nil {
			cpu = append(cpu, fmt.Sprintf("%.0f", *p.MtadCPUMicros))
		}
	}
	if len(cpu) > 0 {
		row("  mtad CPU per message", "%s us, by mtad phase", strings.Join(cpu, ", "))
	}
}

// pooledPhases is the deliveries of phases over their total seconds.
func pooledPhases(phases []*phaseStats) float64 {
	var n int64
	var secs float64
	for _, p := range phases {
		n += p.Delivered
		secs += p.DeliverSeconds
	}
	return rate(n, secs)
}

// throughput reports whether r is of the throughput scenario (the
// default, and the only one before there were scenarios).
func (r *report) throughput() bool {
	return r.Scenario == "" || r.Scenario == scenarioThroughput
}

// conclude fills the comparison and verdict once the phases have run.
func (r *report) conclude() {
	if tp := r.Pairs; tp != nil {
		tp.pool()
		if tp.DirectRate > 0 {
			pct := 100 * tp.MtadRate / tp.DirectRate
			r.DirectRate, r.RatioPct = &tp.DirectRate, &pct
		}
		for i, p := range tp.Mtad {
			r.judge(fmt.Sprintf("mtad phase %d: ", i+1), p)
		}
		for i, p := range tp.Direct {
			r.judge(fmt.Sprintf("direct baseline %d: ", i+1), p)
		}
		r.OK = len(r.Problems) == 0 && len(r.Failed) == 0
		return
	}
	if r.Direct != nil && r.Direct.DeliverRate > 0 {
		r.DirectRate = &r.Direct.DeliverRate
		if r.Main != nil && r.Main != r.Direct {
			pct := 100 * r.Main.DeliverRate / r.Direct.DeliverRate
			r.RatioPct = &pct
		}
	}
	r.judge("", r.Main)
	if r.Direct != r.Main {
		r.judge("direct baseline: ", r.Direct)
	}
	r.OK = len(r.Problems) == 0 && len(r.Failed) == 0
}

// judge adds the problems and warnings of one phase.
func (r *report) judge(prefix string, s *phaseStats) {
	if s == nil {
		return
	}
	if s.Accepted != int64(s.Planned) {
		r.Problems = append(r.Problems, fmt.Sprintf("%sonly %d of %d messages accepted", prefix, s.Accepted, s.Planned))
	}
	if s.Missing > 0 {
		r.Problems = append(r.Problems, fmt.Sprintf("%s%d of %d expected deliveries missing", prefix, s.Missing, s.Expected))
	}
	if s.Errors > 0 {
		r.Problems = append(r.Problems, fmt.Sprintf("%s%d injection errors, first: %s", prefix, s.Errors, s.FirstError))
	}
	if s.SizeMismatches > 0 {
		r.Problems = append(r.Problems, fmt.Sprintf("%s%d messages reached the sink with a body of another size than sent", prefix, s.SizeMismatches))
	}
	if s.Duplicates > 0 {
		r.Warnings = append(r.Warnings, fmt.Sprintf("%s%d duplicate deliveries", prefix, s.Duplicates))
	}
	if s.Unexpected > 0 {
		r.Warnings = append(r.Warnings, fmt.Sprintf("%s%d deliveries of recipients not accepted in this run", prefix, s.Unexpected))
	}
}

// writeText prints the report as aligned text.
func (r *report) writeText(w io.Writer) error {
	var buf bytes.Buffer
	tw := tabwriter.NewWriter(&buf, 0, 0, 2, ' ', 0)
	row := func(k, format string, a ...any) { fmt.Fprintf(tw, "%s\t"+format+"\n", append([]any{k}, a...)...) }
	row("mtad bench", "%s", r.Started.Format(time.RFC3339))
	row("command", "%s", r.Command)
	row("flags", "%s", r.Flags)
	row("host", "%s", r.Host)
	row("mode", "%s", r.Mode)
	if r.Main != nil {
		row("", "")
		writePhase(row, r.Main)
	}
	row("", "")
	if r.throughput() {
		row("mtad peak RSS (VmHWM)", "%s", rssText(r.PeakRSSKiB))
	} else {
		r.writeScenario(row)
	}
	if r.MtadExit != "" {
		row("mtad exit", "%s", r.MtadExit)
	}
	if r.throughput() {
		row("direct injector->sink", "%s", optText(r.DirectRate, "%.1f msg/s"))
		if r.Direct != nil && r.Direct != r.Main {
			row("  harness CPU per message", "%.0f us", r.Direct.HarnessCPUMicros)
		}
		row("delivered/s vs direct", "%s", optText(r.RatioPct, "%.1f%%"))
		if tp := r.Pairs; tp != nil {
			tp.rows(row)
		}
	}
	for _, p := range r.Profiles {
		row("profile", "%s", p)
	}
	row("result", "%s", verdict(r.OK))
	for _, p := range r.Problems {
		row("problem", "%s", p)
	}
	for _, p := range r.Warnings {
		row("warning", "%s", p)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, f := range r.Failed {
		buf.WriteString(f + "\n")
	}
	for line := range strings.Lines(buf.String()) {
		if _, err := io.WriteString(w, strings.TrimRight(line, " \n")+"\n"); err != nil {
			return err
		}
	}
	return nil
}

func writePhase(row func(k, f string, a ...any), s *phaseStats) {
	row("messages injected", "%d of %d", s.Injected, s.Planned)
	row("  accepted", "%d", s.Accepted)
	row("  rejected", "%d", s.Rejected)
	row("  errors", "%d (failed connects %d)", s.Errors, s.ConnFailures)
	row("recipients accepted", "%d (refused %d)", s.RcptsAccepted, s.RcptsRejected)
	row("deliveries expected", "%d", s.Expected)
	row("  delivered", "%d (messages complete %d)", s.Delivered, s.Complete)
	row("  missing", "%d", s.Missing)
	row("  duplicates", "%d", s.Duplicates)
	row("sink sessions", "%d (messages %d, recipient deliveries %d)", s.SinkSessions, s.SinkMessages, s.SinkDeliveries)
	row("sink 451 / 550 answers", "%d / %d", s.TempFails, s.PermFails)
	if s.Deferred > 0 {
		row("sink 451s while deferring", "%d", s.Deferred)
	}
	if s.SizeMismatches > 0 {
		row("sink body size mismatches", "%d", s.SizeMismatches)
	}
	row("sink other messages", "%d (DSNs and leftovers; bench messages lacking X-Bench-Sent %d)", s.Foreign, s.Malformed)
	row("accepted/s (injection)", "%.1f (%d in %.3f s)", s.AcceptRate, s.Accepted, s.InjectSeconds)
	row("delivered/s end to end", "%.1f (%d messages in %.3f s)", s.DeliverRate, s.Complete, s.DeliverSeconds)
	switch {
	case s.Early > 0 && s.Early == s.AcceptToDelivered.Count:
		row("accept->delivered", "n/a: every delivery came before its 250 (as it must, direct)")
	case s.Early > 0:
		row("accept->delivered", "%s", latencyText(s.AcceptToDelivered))
		row("  delivered before 250", "%d (counted as 0 ms)", s.Early)
	default:
		row("accept->delivered", "%s", latencyText(s.AcceptToDelivered))
	}
	row("DATA->delivered (wall)", "%s", latencyText(s.SentToDelivered))
	if s.HarnessCPUMicros > 0 { // measured by runPhase only
		row("CPU per message", "mtad %s, harness (injector and sink) %.0f us", optText(s.MtadCPUMicros, "%.0f us"), s.HarnessCPUMicros)
	}
	if s.FirstRejection != "" {
		row("first rejection", "%s", s.FirstRejection)
	}
	if s.FirstError != "" {
		row("first error", "%s", s.FirstError)
	}
}

func latencyText(l latencyStats) string {
	if l.Count == 0 {
		return "n/a"
	}
	return fmt.Sprintf("p50 %.2f ms  p99 %.2f ms  max %.2f ms  (n=%d)", l.P50, l.P99, l.Max, l.Count)
}

func rssText(kib *int64) string {
	if kib == nil {
		return "n/a"
	}
	return fmt.Sprintf("%.1f MiB", float64(*kib)/1024)
}

func optText(v *float64, format string) string {
	if v == nil {
		return "n/a"
	}
	return fmt.Sprintf(format, *v)
}

func verdict(ok bool) string {
	if ok {
		return "OK"
	}
	return "FAILED"
}

// writeJSON prints the report as one indented JSON document.
func (r *report) writeJSON(w io.Writer) error {
	out := *r
	if out.Direct == out.Main {
		out.Direct = nil // direct only: the one phase is "main"
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(&out)
}

// quoteArgs renders argv so that it can be pasted back into a shell.
func quoteArgs(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\"'$\\") {
			a = fmt.Sprintf("%q", a)
		}
		q[i] = a
	}
	return strings.Join(q, " ")
}
