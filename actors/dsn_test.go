package actors

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mtad/mtad/config"
	"github.com/mtad/mtad/internal/testsink"
	"github.com/mtad/mtad/messages"
	"github.com/mtad/mtad/persistence"
)

// slowJournal makes state writes slow, so that results of one message
// queue up behind each other.
type slowJournal struct {
	*persistence.Journal
	dsns atomic.Int32
}

func (s *slowJournal) Accept(env *messages.Envelope, b []byte) error {
	if env.Source == "dsn" {
		s.dsns.Add(1)
	}
	return s.Journal.Accept(env, b)
}

func (s *slowJournal) Update(id messages.MsgID, r []messages.Recipient) error {
	time.Sleep(100 * time.Millisecond)
	return s.Journal.Update(id, r)
}

func (s *slowJournal) Defer(id messages.MsgID, r []messages.Recipient) error {
	time.Sleep(100 * time.Millisecond)
	return s.Journal.Defer(id, r)
}

func (s *slowJournal) Finish(id messages.MsgID, n int) error {
	time.Sleep(100 * time.Millisecond)
	return s.Journal.Finish(id, n)
}

// Three recipients in three domains fail while earlier writes of the same
// message are still in flight: each failure still gets its DSN (the
// message is finished by the last write only), and the journal ends empty.
func TestEveryFailureGetsItsDSN(t *testing.T) {
	sink := testsink.Start(t)
	sink.SetRcptReply(func(rcpt string) *smtp.SMTPError {
		if rcpt != "s@sender.test" {
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
		}
		return nil
	})
	host, port, _ := net.SplitHostPort(sink.Addr)
	cfg, err := config.Parse("t.toml", []byte(fmt.Sprintf(`
[queue.route.relay]
type = "relay"
address = %q
port = %s
[queue.strategy]
route = "'relay'"
`, host, port)))
	if err != nil {
		t.Fatal(err)
	}
	pj, err := persistence.Open(t.TempDir(), persistence.Options{})
	if err != nil {
		t.Fatal(err)
	}
	j := &slowJournal{Journal: pj}
	e, err := Start(Deps{Config: cfg, Journal: j, Resolver: loopback{}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = e.Stop(ctx)
		_ = pj.Close()
	})
	env := &messages.Envelope{ID: pj.NextID(), From: "s@sender.test", Arrival: time.Now()}
	for i, r := range []string{"a@one.test", "b@two.test", "c@three.test"} {
		env.Rcpts = append(env.Rcpts, messages.Recipient{Index: uint32(i), Addr: r})
	}
	body := []byte("Subject: x\r\n\r\nbody\r\n")
	env.Size = int64(len(body))
	e.Place(env)
	if err := pj.Accept(env, body); err != nil {
		t.Fatal(err)
	}
	e.Enqueue(env)
	waitUntil(t, "three DSNs at the sender", 10*time.Second, func() bool { return len(sink.Rcpts()) == 3 })
	if n := j.dsns.Load(); n != 3 {
		t.Errorf("%d DSNs journaled, want 3", n)
	}
	waitUntil(t, "the journal emptied", 10*time.Second, func() bool {
		n, err := pj.Stats()
		return err == nil && n == 0
	})
}
