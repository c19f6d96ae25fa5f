package persistence

import (
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"testing"
	"time"

	"github.com/mtad/mtad/messages"
)

// testLogger logs through t and fails the test on any record at Error or
// above, such as a Pebble background error or API misuse.
func testLogger(t testing.TB) *slog.Logger {
	h := slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo})
	return slog.New(failOnError{Handler: h, t: t})
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(p))
	return len(p), nil
}

type failOnError struct {
	slog.Handler
	t testing.TB
}

func (h failOnError) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelError {
		h.t.Errorf("error logged: %s", r.Message)
	}
	return h.Handler.Handle(ctx, r)
}

// openT opens a journal in dir and closes it when the test ends, if the
// test has not closed it.
func openT(t testing.TB, dir string) *Journal {
	t.Helper()
	j, err := Open(dir, Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { j.Close() })
	return j
}

// sampleEnvelope returns an envelope with every field set, and recipients
// in each state.
func sampleEnvelope(id messages.MsgID) *messages.Envelope {
	arrival := time.Date(2026, 3, 14, 15, 9, 26, 535897932, time.UTC)
	return &messages.Envelope{
		ID:             id,
		From:           "bounces+" + id.String() + "@news.example",
		Size:           5,
		Arrival:        arrival,
		Body:           messages.Body8BitMIME,
		SMTPUTF8:       true,
		RequireTLS:     true,
		Ret:            messages.RetHdrs,
		EnvID:          "env-" + id.String(),
		ReceivedFromIP: "2001:db8::25",
		Helo:           "client.example",
		Source:         "authenticated",
		Priority:       -3,
		Rcpts: []messages.Recipient{
			{Index: 0, Addr: "a@one.example", Notify: messages.NotifyFailure | messages.NotifyDelay,
				ORcpt: "rfc822;a@one.example", Queue: "default"},
			{Index: 1, Addr: "b@two.example", Notify: messages.NotifyNever, Status: messages.StatusDelivered,
				Queue: "bulk", Attempts: 1, LastReply: messages.Reply{Code: 250, Enhanced: "2.0.0", Text: "ok queued"}},
			{Index: 2, Addr: "ü@drei.example", Status: messages.StatusPending, Queue: "default", Attempts: 3,
				NextAttempt: arrival.Add(90*time.Minute + 1), NotifyNum: 1,
				LastReply: messages.Reply{Code: 451, Enhanced: "4.7.1", Text: "greylisted", Class: "rcpt"}},
		},
	}
}

// normalize strips locations and monotonic clock readings, which the
// journal does not keep, so that envelopes compare with DeepEqual.
func normalize(env *messages.Envelope) *messages.Envelope {
	c := *env
	c.Arrival = utc(c.Arrival)
	c.Rcpts = append([]messages.Recipient(nil), env.Rcpts...)
	for i := range c.Rcpts {
		c.Rcpts[i].NextAttempt = utc(c.Rcpts[i].NextAttempt)
	}
	return &c
}

func utc(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC()
}

func checkEqual(t testing.TB, got, want *messages.Envelope) {
	t.Helper()
	if g, w := normalize(got), normalize(want); !reflect.DeepEqual(g, w) {
		t.Errorf("envelope differs:\n got %s\nwant %s", dump(g), dump(w))
	}
}

func dump(env *messages.Envelope) string { return fmt.Sprintf("%+v", *env) }

// loadAll returns every envelope Load yields.
func loadAll(t testing.TB, j *Journal) []*messages.Envelope {
	t.Helper()
	var envs []*messages.Envelope
	err := j.Load(func(env *messages.Envelope) error {
		envs = append(envs, env)
		return nil
	})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return envs
}
