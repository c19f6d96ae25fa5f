package server

import (
	"errors"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"

	"github.com/mtad/mtad/internal/testsink"
	"github.com/mtad/mtad/messages"
	"github.com/mtad/mtad/persistence"
)

// A message of several body chunks refused by its queue quota leaves
// nothing in the journal: the chunks streamed in during DATA are aborted.
// One accepted streams through whole.
func TestAcceptorAbortsRefusedBody(t *testing.T) {
	sink := testsink.Start(t)
	sink.SetRcptReply(func(string) *smtp.SMTPError {
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 7, 1}, Message: "not yet"}
	})
	s, _ := startNode(t, relayConfig(sink.Addr, "1h")+`
[queue.quota.global]
messages = 1
`)
	addr := s.Addrs()[0].String()
	big := message("big") + strings.Repeat(strings.Repeat("x", 98)+"\r\n", 6000) // 600 kB: three chunks
	if err := send(t, addr, "s@sender.test", []string{"r1@one.test"}, big); err != nil {
		t.Fatal(err)
	}
	var first messages.MsgID
	if err := s.journal.Load(func(env *messages.Envelope) error { first = env.ID; return nil }); err != nil || first == 0 {
		t.Fatalf("Load: %v, id %v", err, first)
	}
	body, err := s.journal.Body(first)
	if err != nil || !strings.HasSuffix(string(body), big) {
		t.Fatalf("accepted body of %d bytes, %v", len(body), err)
	}
	var se *smtp.SMTPError
	if err := send(t, addr, "s@sender.test", []string{"r2@one.test"}, big); !errors.As(err, &se) || se.Code != 452 {
		t.Fatalf("second message: %v, want 452", err)
	}
	if _, err := s.journal.OpenBody(first + 1); !errors.Is(err, persistence.ErrNotFound) {
		t.Errorf("body of the refused message: %v, want ErrNotFound", err)
	}
}
