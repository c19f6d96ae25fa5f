package main

import (
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

func TestJudgeFailures(t *testing.T) {
	pass := func(rate float64, deferred, delivered int64) *passStats {
		return &passStats{Window: windowStats{Rate: rate, Complete: true, Seconds: 10}, Deferred: deferred, DeferredDelivered: delivered}
	}
	tests := []struct {
		name           string
		clean, failing *passStats
		failed         int
	}{
		{"within share", pass(1000, 0, 0), pass(880, 10, 10), 0},
		{"too slow", pass(1000, 0, 0), pass(870, 10, 10), 1},
		{"retry lost", pass(1000, 0, 0), pass(950, 10, 9), 1},
		{"nothing clean", pass(0, 0, 0), pass(950, 10, 10), 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &rig{rep: &report{}}
			fs := &failuresStats{Clean: tt.clean, Failing: tt.failing, Threshold: 0.88, Retry: "2s"}
			r.judgeFailures(fs)
			if len(r.rep.Failed) != tt.failed || len(r.rep.Warnings) != 0 {
				t.Errorf("failed %q (want %d), warnings %q", r.rep.Failed, tt.failed, r.rep.Warnings)
			}
		})
	}
}

func TestJudgeFailuresWarnsOfShortWindow(t *testing.T) {
	r := &rig{rep: &report{}}
	w := windowStats{Rate: 100, Complete: true, Seconds: 5}
	r.judgeFailures(&failuresStats{Clean: &passStats{Window: w}, Failing: &passStats{Window: w}, Threshold: 0.88, Retry: "2s"})
	if len(r.rep.Warnings) != 1 || !strings.Contains(r.rep.Warnings[0], "raise -n") {
		t.Errorf("warnings %q", r.rep.Warnings)
	}
}
