package main

import (
	"math"
	"testing"
)

func TestClassifyShares(t *testing.T) {
	tests := []struct {
		name       string
		temp, perm float64
	}{
		{"none", 0, 0},
		{"temp only", 0.2, 0},
		{"perm only", 0, 0.1},
		{"both", 0.05, 0.3},
		{"all perm", 0, 1},
		{"all temp", 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := newPlan(20000, minSize, 2, 7, tt.temp, tt.perm)
			if err != nil {
				t.Fatal(err)
			}
			var count [3]int
			for slot := range p.slots() {
				count[p.class(slot)]++
			}
			n := float64(p.slots())
			checkShare(t, "temp", float64(count[classTemp])/n, tt.temp)
			checkShare(t, "perm", float64(count[classPerm])/n, tt.perm)
			if got, want := p.deliverable(), p.slots()-count[classPerm]; got != want {
				t.Errorf("deliverable = %d, want %d", got, want)
			}
		})
	}
}

// checkShare allows for sampling noise on 40,000 addresses: 0 and 1 are
// exact, anything else within 1.5 percentage points.
func checkShare(t *testing.T, what string, got, want float64) {
	t.Helper()
	if (want == 0 || want == 1) && got != want {
		t.Errorf("%s share = %v, want exactly %v", what, got, want)
	}
	if math.Abs(got-want) > 0.015 {
		t.Errorf("%s share = %.4f, want %.4f", what, got, want)
	}
}

func TestClassifyIsDeterministic(t *testing.T) {
	a, _ := newPlan(1000, minSize, 3, 4, 0.3, 0.2)
	b, _ := newPlan(1000, minSize, 3, 4, 0.3, 0.2)
	for slot := range a.slots() {
		if a.class(slot) != b.class(slot) {
			t.Fatalf("slot %d (%s): class %d then %d", slot, a.addr(slot), a.class(slot), b.class(slot))
		}
	}
}

func TestSlotOfRoundTrip(t *testing.T) {
	p, err := newPlan(50, minSize, 3, 4, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	for slot := range p.slots() {
		got, ok := p.slotOf(p.addr(slot))
		if !ok || got != slot {
			t.Fatalf("slotOf(%q) = %d, %v; want %d", p.addr(slot), got, ok, slot)
		}
	}
	if p.addr(7) != "b2-1@d3.bench.test" {
		t.Errorf("addr(7) = %q", p.addr(7))
	}
}

func TestSlotOfRejectsOtherAddresses(t *testing.T) {
	p, _ := newPlan(50, minSize, 3, 4, 0, 0)
	for _, addr := range []string{
		senderAddr, "", "b1-0", "b1-0@d1.example.com", "b50-0@d2.bench.test", // id out of range
		"b1-3@d2.bench.test", "b1-0@d2.bench.test", "b01-0@d3.bench.test", "bx-0@d3.bench.test",
		"b-1-0@d0.bench.test", "postmaster@d0.bench.test",
	} {
		if slot, ok := p.slotOf(addr); ok {
			t.Errorf("slotOf(%q) = %d, want not ours", addr, slot)
		}
	}
}

func TestNewPlanRejectsBadShares(t *testing.T) {
	for _, s := range [][2]float64{{-0.1, 0}, {0, -0.1}, {0.6, 0.5}} {
		if _, err := newPlan(10, minSize, 1, 1, s[0], s[1]); err == nil {
			t.Errorf("newPlan(temp %v, perm %v) succeeded", s[0], s[1])
		}
	}
}
