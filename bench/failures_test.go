package main

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

// slotOfClass finds the first slot of p in class c.
func slotOfClass(t *testing.T, p *plan, c rcptClass) int {
	t.Helper()
	for slot := range p.slots() {
		if p.class(slot) == c {
			return slot
		}
	}
	t.Fatalf("no slot of class %d", c)
	return 0
}

func TestFirstAttemptWindow(t *testing.T) {
	p, _ := newPlan(400, minSize, 1, 1, 0.3, 0.3)
	ok, temp, perm := slotOfClass(t, p, classOK), slotOfClass(t, p, classTemp), slotOfClass(t, p, classPerm)
	l := newLedger(p)
	l.injectStart.Store(int64(time.Second))
	for _, s := range []int{ok, temp, perm} {
		l.accept(s, []int{s})
	}
	// ok: delivered at once at 3 s; temp: 451 at 2 s, delivered on retry at
	// 4 s; perm: 550 at 5 s, which ends the window.
	l.firstRcptAt[ok].Store(int64(3 * time.Second))
	l.deliveredAt[ok].Store(int64(3 * time.Second))
	l.state[ok].Or(bitDelivered)
	l.firstRcptAt[temp].Store(int64(2 * time.Second))
	l.deliveredAt[temp].Store(int64(4 * time.Second))
	l.state[temp].Or(bitDelivered)
	l.firstRcptAt[perm].Store(int64(5 * time.Second))
	w := firstAttemptWindow(l)
	want := windowStats{Seconds: 4, Delivered: 2, FirstTry: 1, Complete: true, Rate: 0.5}
	if w != want {
		t.Errorf("window %+v, want %+v", w, want)
	}
	// A retry after the window's end does not count.
	l.deliveredAt[temp].Store(int64(6 * time.Second))
	if w := firstAttemptWindow(l); w.Delivered != 1 || w.Seconds != 4 {
		t.Errorf("late retry: %+v", w)
	}
	d, del, delay := retries(l)
	if d != 1 || del != 1 || delay.Count != 1 || delay.Max != 4000 {
		t.Errorf("retries: %d deferred, %d delivered, delay %+v", d, del, delay)
	}
}

func TestFirstAttemptWindowIncomplete(t *testing.T) {
	p, _ := newPlan(3, minSize, 1, 1, 0, 0)
	l := newLedger(p)
	l.injectStart.Store(1)
	l.accept(0, []int{0})
	l.accept(1, []int{1})
	l.deliver(0, 0)
	if w := firstAttemptWindow(l); w.Complete || w.Delivered != 1 {
		t.Errorf("window %+v: slot 1 never arrived, so it is incomplete", w)
	}
}

func TestABBAOrder(t *testing.T) {
	for pairs, want := range map[int]string{1: "CF", 2: "CFFC", 3: "CFFCCF", 4: "CFFCCFFC"} {
		got := ""
		for _, failing := range abbaOrder(pairs) {
			got += map[bool]string{false: "C", true: "F"}[failing]
		}
		if got != want {
			t.Errorf("abbaOrder(%d) = %s, want %s", pairs, got, want)
		}
	}
}

// window is a complete first-attempt window: delivered recipients in secs
// seconds.
func window(delivered int64, secs float64) windowStats {
	return windowStats{Seconds: secs, Delivered: delivered, Complete: true, Rate: rate(delivered, secs)}
}

// passes makes a pass of each window, with 10 deferred recipients of
// which arrived came on their retry.
func passes(arrived int64, ws ...windowStats) []*passStats {
	var ps []*passStats
	for _, w := range ws {
		ps = append(ps, &passStats{Phase: &phaseStats{}, Window: w, Deferred: 10, DeferredDelivered: arrived})
	}
	return ps
}

func TestJudgeFailures(t *testing.T) {
	tests := []struct {
		name           string
		clean, failing []*passStats
		failed         []string  // a part of each failure, in order
		ratio          float64   // pooled; 0 for none
		pairRatios     []float64 // each pair's own
	}{
		{"within share", passes(10, window(10000, 10)), passes(10, window(8800, 10)), nil, 0.88, []float64{0.88}},
		{"too slow", passes(10, window(10000, 10)), passes(10, window(8700, 10)),
			[]string{"is 0.870 of the clean passes' 1000.0 < 0.88 (pooled over 1 pair; pair ratios 0.870)"}, 0.87, []float64{0.87}},
		{"retry lost", passes(10, window(10000, 10)), passes(9, window(9500, 10)),
			[]string{"failing pass 1: 1 of 10 deferred recipients did not arrive"}, 0.95, []float64{0.95}},
		{"nothing clean", passes(10, window(0, 10)), passes(10, window(9500, 10)), []string{"no clean delivered/s"}, 0, []float64{0}},
		// Pair 1 alone is under the threshold, the pool is over it.
		{"one pair under, pool over", passes(10, window(10000, 10), window(10000, 10)), passes(10, window(8500, 10), window(9500, 10)),
			nil, 0.90, []float64{0.85, 0.95}},
		// Each pair alone is over the threshold; pooled, the long window of
		// the slow second failing pass weighs more: 23400/30 s over
		// 18000/20 s.
		{"pairs over, pool under", passes(10, window(10000, 10), window(8000, 10)), passes(10, window(9000, 10), window(14400, 20)),
			[]string{"is 0.867 of the clean passes' 900.0 < 0.88 (pooled over 2 pairs; pair ratios 0.900, 0.900)"}, 0.8667, []float64{0.9, 0.9}},
		{"second failing pass lost a retry", passes(10, window(10000, 10), window(10000, 10)), append(passes(10, window(9500, 10)), passes(8, window(9500, 10))...),
			[]string{"failing pass 2: 2 of 10 deferred"}, 0.95, []float64{0.95, 0.95}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &rig{rep: &report{}}
			fs := &failuresStats{Clean: tt.clean, Failing: tt.failing, Pairs: len(tt.clean), Threshold: 0.88, Retry: "2s"}
			r.judgeFailures(fs)
			if len(r.rep.Failed) != len(tt.failed) || len(r.rep.Warnings) != 0 {
				t.Fatalf("failed %q (want %q), warnings %q", r.rep.Failed, tt.failed, r.rep.Warnings)
			}
			for i, want := range tt.failed {
				if !strings.Contains(r.rep.Failed[i], want) {
					t.Errorf("failure %q, want one containing %q", r.rep.Failed[i], want)
				}
			}
			if got := optText(fs.Ratio, "%.4f"); (tt.ratio == 0) != (fs.Ratio == nil) || (fs.Ratio != nil && math.Abs(*fs.Ratio-tt.ratio) > 1e-4) {
				t.Errorf("pooled ratio %s, want %.4f", got, tt.ratio)
			}
			if len(fs.PairRatios) != len(tt.pairRatios) {
				t.Fatalf("pair ratios %v, want %v", fs.PairRatios, tt.pairRatios)
			}
			for i, q := range tt.pairRatios {
				if math.Abs(fs.PairRatios[i]-q) > 1e-9 {
					t.Errorf("pair ratios %v, want %v", fs.PairRatios, tt.pairRatios)
				}
			}
		})
	}
}

func TestJudgeFailuresWarnsOfShortWindow(t *testing.T) {
	r := &rig{rep: &report{}}
	clean := passes(10, window(500, 5), window(400, 4)) // both under 3 retries of 2s: one warning
	r.judgeFailures(&failuresStats{Clean: clean, Failing: passes(10, window(450, 5), window(450, 5)), Pairs: 2, Threshold: 0.88, Retry: "2s"})
	if len(r.rep.Warnings) != 1 || !strings.Contains(r.rep.Warnings[0], "shortest clean window lasted 4.0 s") || !strings.Contains(r.rep.Warnings[0], "raise -n") {
		t.Errorf("warnings %q", r.rep.Warnings)
	}
}

func TestJudgeFailuresWarnsOfIncompleteWindows(t *testing.T) {
	r := &rig{rep: &report{}}
	failing := passes(10, window(9000, 10), window(9000, 10))
	failing[1].Window.Complete = false
	r.judgeFailures(&failuresStats{Clean: passes(10, window(10000, 10), window(10000, 10)), Failing: failing, Pairs: 2, Threshold: 0.88, Retry: "2s"})
	if len(r.rep.Failed) != 0 || len(r.rep.Warnings) != 1 || !strings.HasPrefix(r.rep.Warnings[0], "failing pass 2 ended before") {
		t.Errorf("failed %q, warnings %q", r.rep.Failed, r.rep.Warnings)
	}
}

func TestFailuresRowsInRunOrder(t *testing.T) {
	clean, failing := passes(10, window(10000, 10), window(10000, 10)), passes(10, window(9000, 10), window(9500, 10))
	for i, run := range []int{1, 4} {
		clean[i].Label, clean[i].Run = fmt.Sprintf("clean pass %d", i+1), run
	}
	for i, run := range []int{2, 3} {
		failing[i].Label, failing[i].Run = fmt.Sprintf("failing pass %d", i+1), run
	}
	fs := &failuresStats{Clean: clean, Failing: failing, Pairs: 2, Threshold: 0.88, Retry: "2s"}
	fs.compare()
	var passRows []string
	var ratioRow string
	fs.rows(func(k, f string, a ...any) {
		if strings.Contains(k, "(run ") {
			passRows = append(passRows, k)
		}
		if k == "failing / clean delivered/s" {
			ratioRow = fmt.Sprintf(f, a...)
		}
	})
	want := []string{"clean pass 1 (run 1 of 4)", "failing pass 1 (run 2 of 4)", "failing pass 2 (run 3 of 4)", "clean pass 2 (run 4 of 4)"}
	if !slices.Equal(passRows, want) {
		t.Errorf("pass rows %q, want %q", passRows, want)
	}
	if ratioRow != "0.925 pooled over 2 pairs (pair ratios 0.900, 0.950; promise: >= 0.88)" {
		t.Errorf("ratio row %q", ratioRow)
	}
}
