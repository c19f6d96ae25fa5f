package persistence

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mtad/mtad/messages"
)

func TestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	j := openT(t, dir)
	env := sampleEnvelope(j.NextID())
	body := []byte("Subject: hi\r\n\r\nhello\r\n")
	if err := j.Accept(env, body); err != nil {
		t.Fatalf("Accept: %v", err)
	}
	got := loadAll(t, j)
	if len(got) != 1 {
		t.Fatalf("Load gave %d envelopes, want 1", len(got))
	}
	checkEqual(t, got[0], env)
	checkBody(t, j, env.ID, body)

	env.Rcpts[0].Status = messages.StatusFailed
	env.Rcpts[0].LastReply = messages.Reply{Code: 550, Enhanced: "5.1.1", Text: "no such user"}
	env.Rcpts[2].Attempts = 4
	env.Rcpts[2].NextAttempt = env.Rcpts[2].NextAttempt.Add(3600e9)
	if err := j.Update(env.ID, []messages.Recipient{env.Rcpts[0], env.Rcpts[2]}); err != nil {
		t.Fatalf("Update: %v", err)
	}
	checkEqual(t, loadAll(t, j)[0], env)

	// The new state survives a restart.
	if err := j.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	j = openT(t, dir)
	checkEqual(t, loadAll(t, j)[0], env)

	if err := j.Finish(env.ID, len(env.Rcpts)); err != nil {
		t.Fatalf("Finish: %v", err)
	}
	if got := loadAll(t, j); len(got) != 0 {
		t.Errorf("Load after Finish gave %d envelopes", len(got))
	}
	if _, err := j.Body(env.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("Body after Finish: %v, want ErrNotFound", err)
	}
	if n, err := j.Stats(); err != nil || n != 0 {
		t.Errorf("Stats after Finish = %d, %v", n, err)
	}
}

// TestDefer: a Defer reads back like an Update, survives a restart, and
// fails as Update does.
func TestDefer(t *testing.T) {
	dir := t.TempDir()
	j := openT(t, dir)
	env := sampleEnvelope(j.NextID())
	if err := j.Accept(env, []byte("body")); err != nil {
		t.Fatal(err)
	}
	env.Rcpts[1].Status = messages.StatusPending
	env.Rcpts[1].Attempts = 3
	env.Rcpts[1].NextAttempt = time.Date(2026, 11, 29, 8, 0, 0, 0, time.UTC)
	env.Rcpts[1].LastReply = messages.Reply{Code: 451, Enhanced: "4.3.0", Text: "try later"}
	if err := j.Defer(env.ID, env.Rcpts[1:2]); err != nil {
		t.Fatalf("Defer: %v", err)
	}
	checkEqual(t, loadAll(t, j)[0], env)
	got, err := j.Get(env.ID)
	if err != nil {
		t.Fatal(err)
	}
	checkEqual(t, got, env)
	if err := j.Defer(env.ID+1000, env.Rcpts[:1]); !errors.Is(err, ErrNotFound) {
		t.Errorf("Defer of an unknown message: %v, want ErrNotFound", err)
	}
	if err := j.Defer(env.ID, []messages.Recipient{{Index: 3}}); err == nil {
		t.Error("Defer of a recipient out of range: no error")
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if err := j.Defer(env.ID, env.Rcpts[1:2]); !errors.Is(err, ErrClosed) {
		t.Errorf("Defer after Close: %v, want ErrClosed", err)
	}
	j = openT(t, dir)
	checkEqual(t, loadAll(t, j)[0], env)
}

func checkBody(t *testing.T, j *Journal, id messages.MsgID, want []byte) {
	t.Helper()
	got, err := j.Body(id)
	if err != nil {
		t.Fatalf("Body: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("Body = %q, want %q", got, want)
	}
}

func TestZeroValues(t *testing.T) {
	j := openT(t, t.TempDir())
	env := &messages.Envelope{ID: j.NextID()} // no recipients, zero times, empty strings
	if err := j.Accept(env, nil); err != nil {
		t.Fatalf("Accept: %v", err)
	}
	got := loadAll(t, j)
	if len(got) != 1 || !got[0].Arrival.IsZero() {
		t.Fatalf("Load = %v", got)
	}
	got[0].Rcpts = nil // Load gives an empty slice
	checkEqual(t, got[0], env)
	checkBody(t, j, env.ID, nil)
}

func TestLoadOrderAndStop(t *testing.T) {
	j := openT(t, t.TempDir())
	for range 5 {
		if err := j.Accept(sampleEnvelope(j.NextID()), []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	envs := loadAll(t, j)
	for i := 1; i < len(envs); i++ {
		if envs[i].ID <= envs[i-1].ID {
			t.Errorf("Load out of order: %v after %v", envs[i].ID, envs[i-1].ID)
		}
	}
	stop := errors.New("stop")
	calls := 0
	err := j.Load(func(*messages.Envelope) error { calls++; return stop })
	if err != stop || calls != 1 {
		t.Errorf("Load = %v after %d calls, want stop after 1", err, calls)
	}
	if n, err := j.Stats(); err != nil || n != 5 {
		t.Errorf("Stats = %d, %v; want 5", n, err)
	}
}

func TestIDsIncreaseAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	var last messages.MsgID
	for round := range 3 {
		j := openT(t, dir)
		for range 3 {
			id := j.NextID()
			if id <= last {
				t.Fatalf("round %d: id %v after %v", round, id, last)
			}
			last = id
		}
		env := sampleEnvelope(last)
		if err := j.Accept(env, []byte("x")); err != nil {
			t.Fatal(err)
		}
		if err := j.Finish(env.ID, len(env.Rcpts)); err != nil {
			t.Fatal(err)
		}
		if err := j.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// An id the caller chose beyond the reserved block is still never reused.
func TestIDChosenByCaller(t *testing.T) {
	dir := t.TempDir()
	j := openT(t, dir)
	const big = messages.MsgID(1 << 40)
	env := sampleEnvelope(big)
	if err := j.Accept(env, nil); err != nil {
		t.Fatal(err)
	}
	if id := j.NextID(); id <= big {
		t.Errorf("NextID = %v after accepting %v", id, big)
	}
	if err := j.Finish(big, len(env.Rcpts)); err != nil {
		t.Fatal(err)
	}
	j.Close()
	j = openT(t, dir)
	if id := j.NextID(); id <= big {
		t.Errorf("NextID after restart = %v, want above %v", id, big)
	}
}

func TestNextIDConcurrent(t *testing.T) {
	j := openT(t, t.TempDir())
	const workers, each = 8, idBlock / 4 // crosses a block boundary
	ids := make([][]messages.MsgID, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for range each {
				ids[w] = append(ids[w], j.NextID())
			}
		})
	}
	wg.Wait()
	seen := make(map[messages.MsgID]bool)
	for _, list := range ids {
		for i, id := range list {
			if seen[id] || (i > 0 && id <= list[i-1]) {
				t.Fatalf("id %v repeated or out of order", id)
			}
			seen[id] = true
		}
	}
}

func TestLocked(t *testing.T) {
	dir := t.TempDir()
	j := openT(t, dir)
	_, err := Open(dir, Options{})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
	if !strings.Contains(err.Error(), dir) {
		t.Errorf("error %q does not name %s", err, dir)
	}
	t.Log(err)
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	j2, err := Open(dir, Options{})
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	j2.Close()
}

func TestConcurrentAccept(t *testing.T) {
	dir := t.TempDir()
	j := openT(t, dir)
	const workers, each = 32, 200
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				env := sampleEnvelope(j.NextID())
				if err := j.Accept(env, fmt.Appendf(nil, "body %d/%d", w, i)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Accept: %v", err)
	}
	j.Close()
	j = openT(t, dir)
	envs := loadAll(t, j)
	if len(envs) != workers*each {
		t.Fatalf("Load gave %d envelopes, want %d", len(envs), workers*each)
	}
	for _, env := range envs {
		checkEqual(t, env, sampleEnvelope(env.ID))
	}
}

func TestBadCalls(t *testing.T) {
	j := openT(t, t.TempDir())
	env := sampleEnvelope(j.NextID())
	if err := j.Accept(env, nil); err != nil {
		t.Fatal(err)
	}
	bad := sampleEnvelope(j.NextID())
	bad.Rcpts[2].Index = 1
	unknown := env.ID + 1000
	tests := []struct {
		name string
		err  error
		want error // nil: any error
	}{
		{"accept id 0", j.Accept(&messages.Envelope{}, nil), nil},
		{"accept duplicate index", j.Accept(bad, nil), nil},
		{"update unknown", j.Update(unknown, env.Rcpts[:1]), ErrNotFound},
		{"update index out of range", j.Update(env.ID, []messages.Recipient{{Index: 3}}), nil},
		{"update bad status", j.Update(env.ID, []messages.Recipient{{Status: 9}}), nil},
		{"finish unknown", j.Finish(unknown, 3), ErrNotFound},
		{"finish wrong count", j.Finish(env.ID, 2), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.err == nil || (tt.want != nil && !errors.Is(tt.err, tt.want)) {
				t.Errorf("err = %v, want %v", tt.err, tt.want)
			}
		})
	}
	checkEqual(t, loadAll(t, j)[0], env) // nothing above changed it
}

func TestClosed(t *testing.T) {
	j := openT(t, t.TempDir())
	env := sampleEnvelope(j.NextID())
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if err := j.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	for name, err := range map[string]error{
		"Accept": j.Accept(env, nil),
		"Update": j.Update(env.ID, env.Rcpts),
		"Finish": j.Finish(env.ID, 3),
		"Load":   j.Load(func(*messages.Envelope) error { return nil }),
	} {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", name, err)
		}
	}
}

func TestGet(t *testing.T) {
	j, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	env := &messages.Envelope{ID: j.NextID(), From: "a@x.test", Rcpts: []messages.Recipient{
		{Index: 0, Addr: "r0@y.test"}, {Index: 1, Addr: "r1@y.test"}}}
	if err := j.Accept(env, []byte("body")); err != nil {
		t.Fatal(err)
	}
	upd := env.Rcpts[1]
	upd.Status, upd.Attempts = messages.StatusDelivered, 1
	if err := j.Update(env.ID, []messages.Recipient{upd}); err != nil {
		t.Fatal(err)
	}
	got, err := j.Get(env.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.From != env.From || len(got.Rcpts) != 2 || got.Rcpts[1].Status != messages.StatusDelivered || got.Pending() != 1 {
		t.Errorf("Get = %+v", got)
	}
	if err := j.Finish(env.ID, 2); err != nil {
		t.Fatal(err)
	}
	if _, err := j.Get(env.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after Finish: %v, want ErrNotFound", err)
	}
}
