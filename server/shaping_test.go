package server

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mtad/mtad/deliverylog"
	"github.com/mtad/mtad/internal/testsink"
)

// A suspension fired by a reply on an open connection does not stop that
// connection from taking the next ready job at once.
func TestSuspensionHoldsOpenConnections(t *testing.T) {
	sink := testsink.Start(t)
	var n atomic.Int32
	sink.SetRcptReply(func(r string) *smtp.SMTPError {
		if r == "r1a@busy.test" && n.Add(1) == 1 {
			return &smtp.SMTPError{Code: 450, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "Too many messages, slow down"}
		}
		return nil
	})
	sink.SetDataDelay(time.Second, func(testsink.Tx) string { return "all" })
	s, dir := startNode(t, relayConfig(sink.Addr, "10s")+`
[queue.virtual.default]
destination-connections = 1
idle-timeout = "5s"
[queue.shaping.slow]
code = 450
text = "(?i)slow down"
action = "suspend"
duration = "5s"
`)
	addr := s.Addrs()[0].String()
	done := make(chan error, 2)
	go func() {
		done <- send(t, addr, "s@sender.test", []string{"r1a@busy.test", "r1b@busy.test"}, message("1"))
	}()
	time.Sleep(300 * time.Millisecond) // m1 is in DATA (1 s) when m2 arrives
	go func() { done <- send(t, addr, "s@sender.test", []string{"r2@busy.test"}, message("2")) }()
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "r2 delivered", 10*time.Second, func() bool { return eventFor(events(t, dir), "delivered", "r2@busy.test") != nil })
	var shaping *deliverylog.Event
	for _, e := range events(t, dir) {
		if e.Event == deliverylog.Shaping {
			shaping = &e
		}
	}
	d := eventFor(events(t, dir), "delivered", "r2@busy.test")
	if shaping == nil || d == nil {
		t.Fatalf("shaping %v delivered %v", shaping, d)
	}
	t.Logf("suspended at %v for 5s; %s delivered %v later", shaping.Time, d.Rcpt, d.Time.Sub(shaping.Time))
	if d.Time.Sub(shaping.Time) < 4*time.Second {
		t.Errorf("BUG: delivered %v into a 5 s suspension", d.Time.Sub(shaping.Time))
	}
}

// A suspend rule firing on dial failures while a reduce is in force: the
// work is held and retried after each suspension, never stranded.
func TestSuspendDuringReduceNotStranded(t *testing.T) {
	sink := testsink.Start(t)
	var n atomic.Int32
	sink.SetRcptReply(func(string) *smtp.SMTPError {
		if n.Add(1) == 1 {
			return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 7, 28}, Message: "slow down"}
		}
		return nil
	})
	s, dir := startNode(t, relayConfig(sink.Addr, "200ms")+`
[queue.shaping.a-slow]
code = 451
enhanced = "4.7"
action = "reduce"
factor = 0.5
duration = "3s"
[queue.shaping.b-down]
text = "(?i)refused"
action = "suspend"
duration = "1s"
`)
	if err := send(t, s.Addrs()[0].String(), "s@sender.test", []string{"r1@busy.test"}, message("1")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "first deferral", 10*time.Second, func() bool { return eventFor(events(t, dir), "deferred", "r1@busy.test") != nil })
	sink.Close() // every later dial is refused
	waitFor(t, "repeated suspensions", 15*time.Second, func() bool {
		n := 0
		for _, e := range events(t, dir) {
			if e.Event == "shaping" && e.Rule == "b-down" {
				n++
			}
		}
		return n >= 3
	})
}

// Jobs a destination holds under a limit count against the queue's
// concurrency: a rate-limited domain starves every other one.
func TestHeldDomainDoesNotStarveQueue(t *testing.T) {
	sink := testsink.Start(t)
	s, _ := startNode(t, relayConfig(sink.Addr, "1s")+`
[queue.virtual.default]
concurrency = 2
idle-timeout = "300ms"
[queue.limit.slow]
key = ["rcpt_domain"]
match = "rcpt_domain == 'slow.test'"
rate = "1/1h"
`)
	addr := s.Addrs()[0].String()
	for i := range 4 {
		if err := send(t, addr, "s@sender.test", []string{"r" + string(rune('0'+i)) + "@slow.test"}, message("s")); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(time.Second)
	if err := send(t, addr, "s@sender.test", []string{"r@fast.test"}, message("f")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		for _, r := range sink.Rcpts() {
			if r == "r@fast.test" {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Errorf("BUG: fast.test (no limit) not delivered in 5 s; sink has %v", sink.Rcpts())
}
