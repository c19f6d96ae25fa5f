package server

import (
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mtad/mtad/internal/testsink"
)

// A quota of 3 messages answers the 4th with 452 4.3.1 and accepts again
// once one of the 3 is delivered.
func TestQueueQuota(t *testing.T) {
	sink := testsink.Start(t)
	var accept atomic.Bool
	sink.SetRcptReply(func(string) *smtp.SMTPError {
		if accept.Load() {
			return nil
		}
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 7, 1}, Message: "not yet"}
	})
	s, dir := startNode(t, relayConfig(sink.Addr, "1s")+`
[queue.quota.global]
messages = 3
[queue.quota.dsn-free]
key = "sender_domain"
messages = 1
match = "sender_domain == 'limited.test'"
`)
	addr := s.Addrs()[0].String()
	is452 := func(err error) bool {
		var se *smtp.SMTPError
		return errors.As(err, &se) && se.Code == 452 && se.EnhancedCode == (smtp.EnhancedCode{4, 3, 1})
	}
	// The matched quota: one message from limited.test at a time.
	if err := send(t, addr, "a@limited.test", []string{"l1@one.test"}, message("l1")); err != nil {
		t.Fatal(err)
	}
	if err := send(t, addr, "b@limited.test", []string{"l2@one.test"}, message("l2")); !is452(err) {
		t.Fatalf("2nd limited.test message: %v, want 452 4.3.1", err)
	}
	// The global quota of 3: two more fit, the 4th does not.
	for i := range 2 {
		if err := send(t, addr, "s@sender.test", []string{fmt.Sprintf("r%d@one.test", i)}, message(fmt.Sprint(i))); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	if err := send(t, addr, "s@sender.test", []string{"r3@one.test"}, message("3")); !is452(err) {
		t.Fatalf("4th message: %v, want 452 4.3.1", err)
	}
	accept.Store(true)
	waitFor(t, "a delivery", 10*time.Second, func() bool { return len(sink.Txs()) > 0 })
	waitFor(t, "the quota to free", 10*time.Second, func() bool {
		return send(t, addr, "s@sender.test", []string{"r3@one.test"}, message("3")) == nil
	})
	waitFor(t, "everything delivered", 10*time.Second, func() bool { return len(sink.Rcpts()) == 4 })
	_ = dir
}

// Admission limits from the configuration: a client over its message rate
// gets 451 4.7.1.
func TestAdmissionLimits(t *testing.T) {
	sink := testsink.Start(t)
	s, _ := startNode(t, relayConfig(sink.Addr, "1s")+`
[session.limits]
messages-per-ip = "2/1h"
`)
	addr := s.Addrs()[0].String()
	for i := range 2 {
		if err := send(t, addr, "s@sender.test", []string{"r@one.test"}, message(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	err := send(t, addr, "s@sender.test", []string{"r@one.test"}, message("3"))
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 451 || se.EnhancedCode != (smtp.EnhancedCode{4, 7, 1}) {
		t.Fatalf("3rd message in the hour: %v, want 451 4.7.1", err)
	}
}
