package server

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mtad/mtad/deliverylog"
	"github.com/mtad/mtad/internal/testdns"
	"github.com/mtad/mtad/internal/testsink"
)

func hostPort(addr string) (string, string) {
	h, p, _ := net.SplitHostPort(addr)
	return h, p
}

func tempFail(rcptPrefix string) func(string) *smtp.SMTPError {
	return func(rcpt string) *smtp.SMTPError {
		if strings.HasPrefix(rcpt, rcptPrefix) {
			return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 7, 1}, Message: "greylisted"}
		}
		return nil
	}
}

// A schedule in seconds: retries every second, a delayed DSN two seconds
// after arrival, the expiry bounce at four seconds — each at its moment.
func TestScheduleRetriesDelayAndExpiry(t *testing.T) {
	sink := testsink.Start(t)
	sink.SetRcptReply(tempFail("slow@"))
	h, p := hostPort(sink.Addr)
	s, dir := startNode(t, fmt.Sprintf(`
[queue.schedule.default]
retry = ["1s"]
notify = ["2s"]
expire = "4s"
[queue.route.relay]
type = "relay"
address = %q
port = %s
[queue.strategy]
route = "'relay'"
`, h, p))
	start := time.Now()
	if err := send(t, s.Addrs()[0].String(), "sender@sender.test", []string{"slow@one.test"}, message("sched")); err != nil {
		t.Fatal(err)
	}
	var delayed, failed *testsink.Tx
	waitFor(t, "the expiry bounce", 15*time.Second, func() bool {
		delayed, failed = nil, nil
		for _, tx := range sink.Txs() {
			switch {
			case tx.From != "":
			case strings.Contains(string(tx.Data), "Action: delayed"):
				delayed = &tx
			case strings.Contains(string(tx.Data), "Action: failed"):
				failed = &tx
			}
		}
		return failed != nil
	})
	within := func(what string, at time.Time, lo, hi time.Duration) {
		if d := at.Sub(start); d < lo || d > hi {
			t.Errorf("%s after %v, want between %v and %v", what, d.Round(10*time.Millisecond), lo, hi)
		}
	}
	if delayed == nil {
		t.Fatal("no delayed DSN")
	}
	// Never early; late only by scheduling and delivery on a busy machine.
	within("delayed DSN", delayed.Time, 2*time.Second, 4*time.Second)
	within("expiry bounce", failed.Time, 4*time.Second, 6500*time.Millisecond)
	if !strings.Contains(string(delayed.Data), "Will-Retry-Until: ") || !strings.Contains(string(failed.Data), "Status: 4.7.1") {
		t.Errorf("DSN fields missing:\n%s\n---\n%s", delayed.Data, failed.Data)
	}
	attempts := 0
	for _, e := range events(t, dir) {
		if e.Event == deliverylog.Deferred && e.Rcpt == "slow@one.test" {
			attempts++
		}
	}
	if attempts < 2 || attempts > 5 {
		t.Errorf("%d deferred attempts in 4s with a 1s retry interval, want about 4", attempts)
	}
	if e := waitEvent(t, dir, "failed", "slow@one.test"); e == nil || !strings.Contains(e.Reply, "expired") {
		t.Errorf("no expiry in the delivery log: %+v", e)
	}
}

// Two virtual queues, concurrency 1 and 4: each is respected at the sink,
// and the transactional queue is not held up by the bulk one.
func TestVirtualQueuesConcurrency(t *testing.T) {
	sink := testsink.Start(t)
	sink.SetDataDelay(150*time.Millisecond, func(tx testsink.Tx) string { return tx.From[strings.IndexByte(tx.From, '@')+1:] })
	h, p := hostPort(sink.Addr)
	s, _ := startNode(t, fmt.Sprintf(`
[queue.virtual.bulk]
concurrency = 1
[queue.virtual.tx]
concurrency = 4
[queue.schedule.bulk]
queue = "bulk"
[queue.schedule.tx]
queue = "tx"
[queue.route.relay]
type = "relay"
address = %q
port = %s
[queue.strategy]
schedule = [ { if = "sender_domain == 'bulk.test'", then = "'bulk'" }, { else = "'tx'" } ]
route = "'relay'"
`, h, p))
	addr := s.Addrs()[0].String()
	var wg sync.WaitGroup
	for i := range 8 {
		for _, from := range []string{"news@bulk.test", "app@tx.test"} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := send(t, addr, from, []string{fmt.Sprintf("u@d%d.test", i)}, message(from)); err != nil {
					t.Error(err)
				}
			}()
		}
	}
	wg.Wait()
	waitFor(t, "16 deliveries", 20*time.Second, func() bool { return len(sink.Txs()) == 16 })
	if got := sink.PeakInData("bulk.test"); got != 1 {
		t.Errorf("bulk queue: %d transactions at once, want 1", got)
	}
	if got := sink.PeakInData("tx.test"); got > 4 {
		t.Errorf("tx queue: %d transactions at once, want at most 4", got)
	}
	var lastTx, lastBulk time.Time
	for _, tx := range sink.Txs() {
		if strings.HasSuffix(tx.From, "@tx.test") && tx.Time.After(lastTx) {
			lastTx = tx.Time
		}
		if strings.HasSuffix(tx.From, "@bulk.test") && tx.Time.After(lastBulk) {
			lastBulk = tx.Time
		}
	}
	if !lastTx.Before(lastBulk) {
		t.Errorf("transactional mail finished at %v, after bulk at %v", lastTx, lastBulk)
	}
}

// A failover relay takes over after a temporary failure: the route is
// chosen on retry_num.
func TestFailoverRelay(t *testing.T) {
	primary, backup := testsink.Start(t), testsink.Start(t)
	primary.SetRcptReply(tempFail(""))
	ph, pp := hostPort(primary.Addr)
	bh, bp := hostPort(backup.Addr)
	s, dir := startNode(t, fmt.Sprintf(`
[queue.schedule.default]
retry = ["1s"]
[queue.route.primary]
type = "relay"
address = %q
port = %s
[queue.route.backup]
type = "relay"
address = %q
port = %s
[queue.strategy]
route = [ { if = "retry_num >= 1", then = "'backup'" }, { else = "'primary'" } ]
`, ph, pp, bh, bp))
	if err := send(t, s.Addrs()[0].String(), "s@sender.test", []string{"r@one.test"}, message("failover")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "delivery through the backup", 10*time.Second, func() bool { return contains(backup.Rcpts(), "r@one.test") })
	if e := waitEvent(t, dir, "delivered", "r@one.test"); e == nil || e.Attempt != 2 {
		t.Errorf("want delivery on attempt 2, got %+v", e)
	}
	if e := eventFor(events(t, dir), "deferred", "r@one.test"); e == nil || e.Code != 451 {
		t.Errorf("want the primary's 451 first, got %+v", e)
	}
}

// Local delivery into Maildir: a known mailbox gets the message; an
// unknown user is refused at RCPT with 550 5.1.1 (no bounce, no backscatter).
func TestLocalMaildir(t *testing.T) {
	s, dir := startNode(t, `
[session]
local-domains = ["local.test"]
trusted-networks = ["10.99.0.0/16"]
`)
	if err := os.MkdirAll(filepath.Join(dir, "mail", "local.test", "alice"), 0o750); err != nil {
		t.Fatal(err)
	}
	addr := s.Addrs()[0].String()
	err := send(t, addr, "s@outside.test", []string{"bob@local.test"}, message("bob"))
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 550 || se.EnhancedCode != (smtp.EnhancedCode{5, 1, 1}) {
		t.Errorf("unknown local user: %v, want 550 5.1.1 at RCPT", err)
	}
	if err := send(t, addr, "s@outside.test", []string{"alice@local.test"}, message("local")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "alice's delivery", 10*time.Second, func() bool { return eventFor(events(t, dir), "delivered", "alice@local.test") != nil })
	files, _ := filepath.Glob(filepath.Join(dir, "mail", "local.test", "alice", "new", "*"))
	if len(files) != 1 {
		t.Fatalf("alice's Maildir new/ holds %d files, want 1", len(files))
	}
	b, _ := os.ReadFile(files[0])
	if !strings.Contains(string(b), "X-Test-Id: local") || !strings.HasPrefix(string(b), "Return-Path: <s@outside.test>") {
		t.Errorf("alice's message:\n%s", b)
	}
}

// Local delivery over LMTP: one reply per recipient after DATA.
func TestLocalLMTP(t *testing.T) {
	lmtp := testsink.StartLMTP(t)
	lmtp.SetDataReply(func(rcpt string) *smtp.SMTPError {
		if strings.HasPrefix(rcpt, "full@") {
			return &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 2, 2}, Message: "mailbox full"}
		}
		return nil
	})
	s, dir := startNode(t, fmt.Sprintf(`
[session]
local-domains = ["local.test"]
[queue.route.local]
type = "local"
lmtp = %q
[queue.strategy]
route = "'local'"
`, lmtp.Addr))
	if err := send(t, s.Addrs()[0].String(), "s@sender.test", []string{"ok@local.test", "full@local.test"}, message("lmtp")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "both outcomes", 10*time.Second, func() bool {
		evs := events(t, dir)
		return eventFor(evs, "delivered", "ok@local.test") != nil && eventFor(evs, "deferred", "full@local.test") != nil
	})
	if e := eventFor(events(t, dir), "deferred", "full@local.test"); e.Code != 452 || e.Enhanced != "4.2.2" {
		t.Errorf("full@: want 452 4.2.2, got %+v", e)
	}
}

// ip-lookup order against a DNS server serving A and AAAA: the preferred
// family first, the other family tried in the same attempt when the
// preferred one is down.
func TestIPLookupOrder(t *testing.T) {
	v4 := testsink.StartOn(t, "127.0.0.2:0")
	_, port := hostPort(v4.Addr)
	v6 := testsink.StartOn(t, "[::1]:"+port)
	// half.test's IPv4 sink listens on a port that nothing on [::1] has:
	// its IPv6 address refuses the connection.
	half := testsink.StartOn(t, "127.0.0.4:0")
	_, halfPort := hostPort(half.Addr)
	dns := testdns.Start(t, `
both.test.     IN MX 10 mx.both.test.
mx.both.test.  IN A    127.0.0.2
mx.both.test.  IN AAAA ::1
half.test.     IN MX 10 mx.half.test.
mx.half.test.  IN A    127.0.0.4
mx.half.test.  IN AAAA ::1
`)
	for _, c := range []struct {
		order, rcpt, port string
		want              *testsink.Sink
	}{
		{"ipv6_then_ipv4", "a@both.test", port, v6},
		{"ipv4_then_ipv6", "b@both.test", port, v4},
		{"ipv4_only", "c@both.test", port, v4},
		{"ipv6_only", "d@both.test", port, v6},
		{"ipv6_then_ipv4", "e@half.test", halfPort, half}, // [::1] refuses: IPv4 in the same attempt
	} {
		t.Run(c.order+"/"+c.rcpt, func(t *testing.T) {
			s, dir := startNode(t, fmt.Sprintf(`
[resolver]
nameservers = [%q]
[queue.route.mx]
type = "mx"
port = %s
ip-lookup = %q
[queue.connection.default]
timeout = { connect = "1s" }
`, dns.Addr, c.port, c.order))
			if err := send(t, s.Addrs()[0].String(), "s@sender.test", []string{c.rcpt}, message(c.rcpt)); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "delivery", 10*time.Second, func() bool { return eventFor(events(t, dir), "delivered", c.rcpt) != nil })
			if !contains(c.want.Rcpts(), c.rcpt) {
				t.Errorf("%s went elsewhere (v4 %v, v6 %v, half %v)", c.rcpt, v4.Rcpts(), v6.Rcpts(), half.Rcpts())
			}
			if e := eventFor(events(t, dir), "delivered", c.rcpt); e.Attempt != 1 {
				t.Errorf("delivered on attempt %d, want 1", e.Attempt)
			}
		})
	}
}

// The connection strategy's EHLO name per source IP reaches the remote.
func TestEHLOPerSourceIP(t *testing.T) {
	sink := testsink.Start(t)
	h, p := hostPort(sink.Addr)
	s, _ := startNode(t, fmt.Sprintf(`
[queue.route.relay]
type = "relay"
address = %q
port = %s
[queue.connection.default]
ehlo-hostname = "fallback.test"
source-ips = ["127.0.0.7"]
ehlo-hostnames = { "127.0.0.7" = "seven.test" }
[queue.strategy]
route = "'relay'"
`, h, p))
	if err := send(t, s.Addrs()[0].String(), "s@sender.test", []string{"r@one.test"}, message("ehlo")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "delivery", 10*time.Second, func() bool { return len(sink.Txs()) == 1 })
	if tx := sink.Txs()[0]; tx.Helo != "seven.test" {
		t.Errorf("EHLO %q, want seven.test", tx.Helo)
	}
}
