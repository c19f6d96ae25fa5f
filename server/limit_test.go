package server

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mtad/mtad/deliverylog"
	"github.com/mtad/mtad/internal/testdns"
	"github.com/mtad/mtad/internal/testsink"
)

// submitMany sends n messages to rcpt(i) over a few sessions.
func submitMany(t *testing.T, addr string, n int, rcpt func(int) string) {
	t.Helper()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 4 {
				if err := send(t, addr, "s@sender.test", []string{rcpt(i)}, message(fmt.Sprint(i))); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// perWindow counts deliveries per window from the first one.
func perWindow(sink *testsink.Sink, window time.Duration, windows int) []int {
	txs := sink.Txs()
	out := make([]int, windows)
	if len(txs) == 0 {
		return out
	}
	start := txs[0].Time
	for _, tx := range txs {
		if tx.Time.Before(start) {
			start = tx.Time
		}
	}
	for _, tx := range txs {
		if i := int(tx.Time.Sub(start) / window); i < windows {
			out[i] += len(tx.Rcpts)
		}
	}
	return out
}

// A 50 messages/s limit toward a sink holds within 10% over 10 s, counted
// by the sink in one-second windows; held recipients are not attempts.
func TestRateLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for 10 s")
	}
	sink := testsink.Start(t)
	s, dir := startNode(t, relayConfig(sink.Addr, "1s")+`
[queue.limit.sink]
key = ["rcpt_domain"]
rate = "50/1s"
`)
	submitMany(t, s.Addrs()[0].String(), 600, func(i int) string { return fmt.Sprintf("r%d@rated.test", i) })
	waitFor(t, "11 s of deliveries", 30*time.Second, func() bool {
		w := perWindow(sink, time.Second, 12)
		return w[11] > 0 || len(sink.Rcpts()) == 600
	})
	w := perWindow(sink, time.Second, 10)
	t.Logf("deliveries per second: %v", w)
	total := 0
	for i, n := range w {
		total += n
		if i > 0 && n > 60 { // never faster; a busy machine may make a second slower
			t.Errorf("second %d: %d deliveries, want at most 50+10%%", i, n)
		}
	}
	if total < 450 || total > 555 { // 500 in 10 s, plus the bucket's initial burst
		t.Errorf("%d deliveries in 10 s (%v), want 500 within 10%%", total, w)
	}
	for _, e := range events(t, dir) {
		if e.Event == "delivered" && e.Attempt != 1 {
			t.Fatalf("%s delivered on attempt %d: a held recipient was counted as an attempt", e.Rcpt, e.Attempt)
		}
	}
}

// A concurrency cap of 3 is never exceeded at the sink.
func TestConcurrencyLimit(t *testing.T) {
	sink := testsink.Start(t)
	sink.SetDataDelay(50*time.Millisecond, func(testsink.Tx) string { return "all" })
	s, _ := startNode(t, relayConfig(sink.Addr, "1s")+`
[queue.virtual.default]
destination-connections = 10
messages-per-connection = 5
idle-timeout = "300ms"
[queue.limit.three]
key = ["rcpt_domain"]
concurrency = 3
`)
	submitMany(t, s.Addrs()[0].String(), 60, func(i int) string { return fmt.Sprintf("r%d@capped.test", i) })
	waitFor(t, "60 deliveries", 30*time.Second, func() bool { return len(sink.Rcpts()) == 60 })
	if total, peak := sink.Conns(); peak > 3 || total < 12 {
		t.Errorf("peak %d connections at once (total %d), want at most 3, recycled every 5 messages", peak, total)
	}
}

// Two domains hosted by one site share its budget.
func TestSiteSharesBudget(t *testing.T) {
	mx := testsink.StartOn(t, "127.0.0.2:0")
	_, port := hostPort(mx.Addr)
	dns := testdns.Start(t, `
a.test.            IN MX 10 mx.a.provider.test.
b.test.            IN MX 10 mx.b.provider.test.
mx.a.provider.test. IN A 127.0.0.2
mx.b.provider.test. IN A 127.0.0.2
`)
	s, _ := startNode(t, fmt.Sprintf(`
[resolver]
nameservers = [%q]
[queue.route.mx]
type = "mx"
port = %s
[queue.site.provider]
mx-suffix = [".provider.test"]
[queue.limit.provider]
key = ["site"]
rate = "20/1s"
`, dns.Addr, port))
	submitMany(t, s.Addrs()[0].String(), 100, func(i int) string {
		return fmt.Sprintf("r%d@%s.test", i, string(rune('a'+i%2)))
	})
	waitFor(t, "4 s of deliveries", 20*time.Second, func() bool { return perWindow(mx, time.Second, 5)[4] > 0 })
	w := perWindow(mx, time.Second, 4)
	t.Logf("deliveries per second to the site: %v", w)
	if total := w[1] + w[2] + w[3]; total > 66 {
		t.Errorf("%v deliveries per second to the two domains of one site, want about 20 together", w)
	}
}

// A rule on "421 ... too many connections" suspends the destination, says
// why in the delivery log, and delivery resumes after its duration.
func TestShapingSuspends(t *testing.T) {
	sink := testsink.Start(t)
	var refused atomic.Int32
	sink.SetRcptReply(func(string) *smtp.SMTPError {
		if refused.Add(1) == 1 {
			return &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "Too many connections from your IP"}
		}
		return nil
	})
	s, dir := startNode(t, relayConfig(sink.Addr, "500ms")+`
[queue.shaping.too-many]
code = 421
text = "(?i)too many connections"
action = "suspend"
duration = "2s"
`)
	if err := send(t, s.Addrs()[0].String(), "s@sender.test", []string{"r@busy.test"}, message("busy")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "delivery after the suspension", 15*time.Second, func() bool { return eventFor(events(t, dir), "delivered", "r@busy.test") != nil })
	var shaping *deliverylog.Event
	for _, e := range events(t, dir) {
		if e.Event == deliverylog.Shaping {
			shaping = &e
		}
	}
	if shaping == nil || shaping.Rule != "too-many" || shaping.Code != 421 || shaping.Action != "suspend" || shaping.Domain != "busy.test" {
		t.Fatalf("shaping event %+v", shaping)
	}
	d := eventFor(events(t, dir), "delivered", "r@busy.test")
	if gap := d.Time.Sub(shaping.Time); gap < 1900*time.Millisecond {
		t.Errorf("delivered %v after the suspension began, want at least its 2 s", gap)
	}
	if d.Attempt != 2 {
		t.Errorf("delivered on attempt %d, want 2 (the suspension spends no attempts)", d.Attempt)
	}
}

// A reduce rule lowers a destination's message rate for its duration.
func TestShapingReducesRate(t *testing.T) {
	sink := testsink.Start(t)
	var slow atomic.Int32
	sink.SetRcptReply(func(string) *smtp.SMTPError {
		if slow.Add(1) == 1 {
			return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 7, 28}, Message: "rate limited, slow down"}
		}
		return nil
	})
	s, dir := startNode(t, relayConfig(sink.Addr, "200ms")+`
[queue.limit.domain]
key = ["rcpt_domain"]
rate = "40/1s"
[queue.shaping.slow-down]
enhanced = "4.7.28"
action = "reduce"
factor = 0.25
duration = "1h"
`)
	submitMany(t, s.Addrs()[0].String(), 60, func(i int) string { return fmt.Sprintf("r%d@slow.test", i) })
	waitFor(t, "3 s of deliveries", 20*time.Second, func() bool { return perWindow(sink, time.Second, 4)[3] > 0 })
	w := perWindow(sink, time.Second, 4)
	t.Logf("deliveries per second after the rule: %v", w)
	if w[1] > 13 || w[2] > 13 {
		t.Errorf("%v per second, want about 10 (40/s reduced to a quarter)", w)
	}
	found := false
	for _, e := range events(t, dir) {
		found = found || (e.Event == deliverylog.Shaping && e.Rule == "slow-down" && e.Action == "reduce")
	}
	if !found {
		t.Error("no shaping event for the reduce rule")
	}
}
