package main

import (
	"strings"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		d := make([]time.Duration, len(v))
		for i, x := range v {
			d[i] = time.Duration(x) * time.Millisecond
		}
		return d
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = i + 1
	}
	tests := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one", ms(7), 50, 7 * time.Millisecond},
		{"one p99", ms(7), 99, 7 * time.Millisecond},
		{"median odd", ms(1, 2, 3, 4, 5), 50, 3 * time.Millisecond},
		{"median even is the lower", ms(1, 2, 3, 4), 50, 2 * time.Millisecond},
		{"p99 of 100", ms(hundred...), 99, 99 * time.Millisecond},
		{"p50 of 100", ms(hundred...), 50, 50 * time.Millisecond},
		{"p100 is max", ms(hundred...), 100, 100 * time.Millisecond},
		{"p99 of 10 is max", ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 99, 10 * time.Millisecond},
		{"tiny p is min", ms(1, 2, 3), 0.01, time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := percentile(tt.sorted, tt.p); got != tt.want {
				t.Errorf("percentile(p%v) = %v, want %v", tt.p, got, tt.want)
			}
		})
	}
}

func TestCollect(t *testing.T) {
	p, _ := newPlan(4, minSize, 2, 1, 0, 0)
	l := newLedger(p)
	l.injectStart.Store(1)
	l.accept(0, []int{0, 1})
	l.accept(1, []int{2}) // recipient 3 refused at injection
	l.accept(2, []int{4, 5})
	l.injectEnd.Store(l.clock.now())
	for _, slot := range []int{0, 1, 2, 4} { // 5 never arrives
		l.deliver(slot, time.Now().UnixNano()-int64(time.Millisecond))
	}
	l.deliver(6, 0) // message 3 was never accepted
	s := collect(l)
	want := phaseStats{Expected: 5, Delivered: 4, Missing: 1, Unexpected: 1, Complete: 2}
	got := phaseStats{Expected: s.Expected, Delivered: s.Delivered, Missing: s.Missing, Unexpected: s.Unexpected, Complete: s.Complete}
	if got != want {
		t.Errorf("collect = %+v, want %+v", got, want)
	}
	if s.AcceptToDelivered.Count != 4 || s.SentToDelivered.Count != 4 || s.SentToDelivered.P50 < 1 {
		t.Errorf("latencies: %+v / %+v", s.AcceptToDelivered, s.SentToDelivered)
	}
	if s.ok() {
		t.Error("a phase with missing deliveries is ok")
	}
}

func TestParseVmHWM(t *testing.T) {
	status := "Name:\tmtad\nVmPeak:\t  999 kB\nVmHWM:\t   12345 kB\nVmRSS:\t 100 kB\n"
	if got, err := parseVmHWM([]byte(status)); err != nil || got != 12345 {
		t.Errorf("parseVmHWM = %d, %v; want 12345", got, err)
	}
	if _, err := parseVmHWM([]byte("Name:\tx\n")); err == nil {
		t.Error("no VmHWM line parsed")
	}
}

func TestRequireLoopback(t *testing.T) {
	for addr, ok := range map[string]bool{
		"127.0.0.1:25": true, "[::1]:2525": true, "127.0.0.1:0": true,
		"127.0.0.2:25": false, "localhost:25": false, "10.0.0.1:25": false, "0.0.0.0:25": false,
		"[::]:25": false, "example.com:25": false, "127.0.0.1": false,
	} {
		if err := requireLoopback(addr); (err == nil) != ok {
			t.Errorf("requireLoopback(%q) = %v, want ok=%v", addr, err, ok)
		}
	}
}

func TestConfigCheck(t *testing.T) {
	tests := []struct {
		args []string
		want string // part of the error; "" for none
	}{
		{nil, ""},
		{[]string{"-direct-only"}, ""},
		{[]string{"-target", "127.0.0.1:2525", "-sink-listen", "127.0.0.1:2526"}, ""},
		{[]string{"-size", "100"}, "-size"},
		{[]string{"-c", "0"}, "-c"},
		{[]string{"-temp-fail", "0.7", "-perm-fail", "0.4"}, "-temp-fail"},
		{[]string{"-target", "127.0.0.1:2525"}, "-sink-listen"},
		{[]string{"-target", "192.0.2.1:25", "-sink-listen", "127.0.0.1:2526"}, "-target"},
		{[]string{"-sink-listen", "0.0.0.0:2526"}, "-sink-listen"},
		{[]string{"-direct-only", "-skip-direct"}, "exclude"},
		{[]string{"-direct-only", "-perm-fail", "0.1"}, "-perm-fail"},
		{[]string{"-target", "127.0.0.1:2525", "-sink-listen", "127.0.0.1:2526", "-config", "x"}, "-config"},
		{[]string{"-timeout", "0s"}, "-timeout"},
	}
	for _, tt := range tests {
		var cfg config
		if err := newFlagSet(&cfg).Parse(tt.args); err != nil {
			t.Fatal(err)
		}
		err := cfg.check()
		if (err == nil) != (tt.want == "") || (err != nil && !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("check(%v) = %v, want error containing %q", tt.args, err, tt.want)
		}
	}
}

func TestReportVerdict(t *testing.T) {
	good := &phaseStats{Planned: 10, Injected: 10, Accepted: 10, Expected: 10, Delivered: 10, Complete: 10, DeliverRate: 50}
	direct := &phaseStats{Planned: 10, Injected: 10, Accepted: 10, Expected: 10, Delivered: 10, Complete: 10, DeliverRate: 200}
	r := &report{Main: good, Direct: direct}
	r.conclude()
	if !r.OK || r.RatioPct == nil || *r.RatioPct != 25 {
		t.Errorf("report: ok %v ratio %v problems %v", r.OK, r.RatioPct, r.Problems)
	}
	bad := *good
	bad.Accepted, bad.Missing = 9, 1
	r = &report{Main: &bad}
	r.conclude()
	if r.OK || len(r.Problems) != 2 {
		t.Errorf("bad report: ok %v problems %v", r.OK, r.Problems)
	}
}

func TestParseStatCPU(t *testing.T) {
	// The command name may hold spaces and parentheses; utime 250 and
	// stime 50 ticks are 3 s.
	stat := "4242 (mt ad) x) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 9 0 100 1000 200\n"
	got, err := parseStatCPU([]byte(stat))
	if err != nil || got != 3*time.Second {
		t.Fatalf("parseStatCPU = %v, %v; want 3s", got, err)
	}
	for _, bad := range []string{"", "4242 (mtad) S 1 2 3", "4242 (mtad) S 1 2 3 4 5 6 7 8 9 10 x 50 0"} {
		if _, err := parseStatCPU([]byte(bad)); err == nil {
			t.Errorf("parseStatCPU(%q): no error", bad)
		}
	}
}
