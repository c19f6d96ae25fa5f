package server

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mtad/mtad/internal/testsink"
)

func relayConfig(sink string, retry string) string {
	host, port, _ := strings.Cut(sink, ":")
	return fmt.Sprintf(`
[queue.schedule.default]
retry = [%q]
[queue.route.relay]
type = "relay"
address = %q
port = %s
[queue.strategy]
route = "'relay'"
`, retry, host, port)
}

// Recipients in two domains arrive as two transactions, each with all of
// its domain's recipients.
func TestRelayGroupsByDomain(t *testing.T) {
	sink := testsink.Start(t)
	s, _ := startNode(t, relayConfig(sink.Addr, "1s"))
	addr := s.Addrs()[0].String()
	rcpts := []string{"a1@one.test", "b1@two.test", "a2@one.test", "b2@two.test"}
	if err := send(t, addr, "sender@sender.test", rcpts, message("m1")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "4 recipients at the sink", 10*time.Second, func() bool { return len(sink.Rcpts()) == 4 })
	txs := sink.Txs()
	if len(txs) != 2 {
		t.Fatalf("got %d transactions, want 2: %+v", len(txs), txs)
	}
	for _, tx := range txs {
		if len(tx.Rcpts) != 2 || tx.From != "sender@sender.test" {
			t.Errorf("transaction %+v: want 2 recipients of one domain from sender@sender.test", tx)
		}
		dom := tx.Rcpts[0][strings.IndexByte(tx.Rcpts[0], '@'):]
		if !strings.HasSuffix(tx.Rcpts[1], dom) {
			t.Errorf("transaction mixes domains: %v", tx.Rcpts)
		}
		if !strings.Contains(string(tx.Data), "X-Test-Id: m1\r\n") || !strings.HasPrefix(string(tx.Data), "Received: ") {
			t.Errorf("body not as submitted (with a Received header first): %q", tx.Data)
		}
	}
}

// Per-recipient replies: 250 delivered, 550 failed for good, 451 retried
// on the schedule and delivered on the next attempt.
func TestRelayPerRecipientReplies(t *testing.T) {
	sink := testsink.Start(t)
	var mu sync.Mutex
	tempFailed := 0
	sink.SetRcptReply(func(rcpt string) *smtp.SMTPError {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case strings.HasPrefix(rcpt, "perm@"):
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
		case strings.HasPrefix(rcpt, "temp@") && tempFailed == 0:
			tempFailed++
			return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 7, 1}, Message: "try later"}
		}
		return nil
	})
	s, dir := startNode(t, relayConfig(sink.Addr, "1s"))
	rcpts := []string{"ok@one.test", "perm@one.test", "temp@one.test"}
	if err := send(t, s.Addrs()[0].String(), "sender@sender.test", rcpts, message("m2")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the deferred recipient delivered", 15*time.Second, func() bool {
		return eventFor(events(t, dir), "delivered", "temp@one.test") != nil
	})
	waitFor(t, "the bounce for perm@", 10*time.Second, func() bool { return contains(sink.Rcpts(), "sender@sender.test") })
	var bounce *testsink.Tx
	var others []string
	for _, tx := range sink.Txs() {
		if tx.From == "" {
			bounce = &tx
			continue
		}
		others = append(others, tx.Rcpts...)
	}
	if strings.Join(others, ",") != "ok@one.test,temp@one.test" {
		t.Errorf("sink got %v, want ok then temp", others)
	}
	if bounce == nil || len(bounce.Rcpts) != 1 || bounce.Rcpts[0] != "sender@sender.test" {
		t.Fatalf("want one DSN from <> to the sender, got %+v", bounce)
	}
	for _, want := range []string{"Final-Recipient: rfc822; perm@one.test", "Action: failed", "Status: 5.1.1", "X-Test-Id: m2"} {
		if !strings.Contains(string(bounce.Data), want) {
			t.Errorf("DSN lacks %q:\n%s", want, bounce.Data)
		}
	}
	if strings.Contains(string(bounce.Data), "temp@one.test") || strings.Contains(string(bounce.Data), "Final-Recipient: rfc822; ok@") {
		t.Errorf("DSN reports on recipients that did not fail:\n%s", bounce.Data)
	}
	evs := events(t, dir)
	if e := eventFor(evs, "failed", "perm@one.test"); e == nil || e.Code != 550 || e.Enhanced != "5.1.1" {
		t.Errorf("perm@: want a failed event with 550 5.1.1, got %+v", e)
	}
	if e := eventFor(evs, "deferred", "temp@one.test"); e == nil || e.Code != 451 || e.NextTry.IsZero() {
		t.Errorf("temp@: want a deferred event with 451 and a next attempt, got %+v", e)
	}
	if e := eventFor(evs, "delivered", "temp@one.test"); e.Attempt != 2 {
		t.Errorf("temp@ delivered on attempt %d, want 2", e.Attempt)
	}
	if e := eventFor(evs, "delivered", "ok@one.test"); e == nil || e.Attempt != 1 || e.IP != "127.0.0.1" {
		t.Errorf("ok@: want delivered on attempt 1 via 127.0.0.1, got %+v", e)
	}
}

// A body with bare-LF dot sequences (SMTP smuggling) arrives as exactly
// one message and the smuggled commands are never run as a transaction.
func TestSmugglingArrivesAsOneMessage(t *testing.T) {
	sink := testsink.Start(t)
	s, dir := startNode(t, relayConfig(sink.Addr, "1s"))
	body := "Subject: smuggle\r\n\r\nline\n.\nMAIL FROM:<evil@evil.test>\nRCPT TO:<victim@one.test>\nDATA\nevil\n.\r\n" +
		"more\r\n"
	if err := send(t, s.Addrs()[0].String(), "sender@sender.test", []string{"rcpt@one.test"}, body); err != nil {
		t.Fatalf("submission: %v", err)
	}
	waitFor(t, "the message delivered", 10*time.Second, func() bool {
		return eventFor(events(t, dir), "delivered", "rcpt@one.test") != nil
	})
	accepted := 0
	for _, e := range events(t, dir) {
		if e.Event == "accepted" {
			accepted++
		}
	}
	txs := sink.Txs()
	if accepted != 1 || len(txs) != 1 || len(txs[0].Rcpts) != 1 || txs[0].Rcpts[0] != "rcpt@one.test" {
		t.Fatalf("want exactly one message accepted (got %d) and one transaction to rcpt@one.test, got %+v", accepted, txs)
	}
	if !strings.Contains(string(txs[0].Data), "victim@one.test") {
		t.Errorf("the smuggled text should stay inside the one message: %q", txs[0].Data)
	}
}

// Connections are reused for further messages, capped per destination,
// recycled after messages-per-connection and closed when idle.
func TestConnectionReuseAndCap(t *testing.T) {
	sink := testsink.Start(t)
	s, dir := startNode(t, relayConfig(sink.Addr, "1s")+`
[queue.virtual.default]
destination-connections = 2
messages-per-connection = 10
idle-timeout = "300ms"
`)
	addr := s.Addrs()[0].String()
	const n = 40
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := send(t, addr, "s@sender.test", []string{fmt.Sprintf("r%d@one.test", i)}, message(fmt.Sprint(i))); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	waitFor(t, "all delivered", 15*time.Second, func() bool { return len(sink.Rcpts()) == n })
	total, peak := sink.Conns()
	if peak > 2 {
		t.Errorf("peak %d connections at once, want at most 2 (destination-connections)", peak)
	}
	if total < n/10 || total >= n {
		t.Errorf("%d connections for %d messages: want reuse, at most 10 messages each", total, n)
	}
	waitFor(t, "idle connections closed", 5*time.Second, func() bool { return sink.Live() == 0 })
	if waitEvent(t, dir, "delivered", "r0@one.test") == nil {
		t.Errorf("no delivered event for r0@one.test")
	}
}
