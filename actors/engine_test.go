package actors

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/mtad/mtad/config"
	"github.com/mtad/mtad/internal/testsink"
	"github.com/mtad/mtad/messages"
	"github.com/mtad/mtad/persistence"
	"github.com/mtad/mtad/resolver"
)

// loopback resolves every name to 127.0.0.1 (the relay address is an IP
// in these tests; MX lookups give the implicit MX).
type loopback struct{}

func (loopback) LookupMXFull(_ context.Context, domain string) (resolver.MXResult, error) {
	return resolver.MXResult{Records: []resolver.MX{{Host: domain, Implicit: true}}}, nil
}

func (loopback) LookupTLSA(context.Context, string) (resolver.TLSAResult, error) {
	return resolver.TLSAResult{}, nil
}

func (loopback) LookupIP(context.Context, string, resolver.IPOrder) ([]netip.Addr, error) {
	return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
}

type harness struct {
	t       testing.TB
	engine  *Engine
	journal *persistence.Journal
}

func newHarness(t testing.TB, relay string, extra string) *harness {
	t.Helper()
	return newHarnessWith(t, relay, extra, nil)
}

// newHarnessWith is newHarness with tweak applied to the engine's Deps.
func newHarnessWith(t testing.TB, relay string, extra string, tweak func(*Deps)) *harness {
	t.Helper()
	cfg := relayConfig(t, relay, "relay", extra)
	j, err := persistence.Open(t.TempDir(), persistence.Options{})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	deps := Deps{Config: cfg, Journal: j, Resolver: loopback{}, Logger: log}
	if tweak != nil {
		tweak(&deps)
	}
	e, err := Start(deps)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, engine: e, journal: j}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = e.Stop(ctx)
		_ = j.Close()
	})
	return h
}

// relayConfig is the harness's configuration: every recipient goes
// through the relay route named route to relay (host:port), retried
// every second, with extra appended (it ends inside [queue.strategy]).
func relayConfig(t testing.TB, relay, route, extra string) *config.Config {
	t.Helper()
	host, port, _ := net.SplitHostPort(relay)
	cfg, err := config.Parse("engine_test.toml", []byte(fmt.Sprintf(`
[queue.virtual.default]
idle-timeout = "200ms"
[queue.schedule.default]
retry = ["1s"]
[queue.route.%s]
type = "relay"
address = %q
port = %s
[queue.strategy]
route = "'%s'"
`, route, host, port, route)+extra))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// submit journals a message the way the server does and enqueues it.
func (h *harness) submit(id string, rcpts ...string) messages.MsgID {
	h.t.Helper()
	env := &messages.Envelope{ID: h.journal.NextID(), From: "s@sender.test", Arrival: time.Now()}
	for i, r := range rcpts {
		env.Rcpts = append(env.Rcpts, messages.Recipient{Index: uint32(i), Addr: r})
	}
	body := []byte("Subject: " + id + "\r\nX-Test-Id: " + id + "\r\n\r\nbody\r\n")
	env.Size = int64(len(body))
	h.engine.Place(env)
	if err := h.journal.Accept(env, body); err != nil {
		h.t.Fatal(err)
	}
	h.engine.Enqueue(env)
	return env.ID
}

func waitUntil(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func ids(sink *testsink.Sink) map[string]int {
	out := map[string]int{}
	for _, tx := range sink.Txs() {
		s := string(tx.Data)
		if i := strings.Index(s, "X-Test-Id: "); i >= 0 {
			id := s[i+len("X-Test-Id: "):]
			id = id[:strings.IndexByte(id, '\r')]
			out[id] += len(tx.Rcpts)
		}
	}
	return out
}

// A queue actor that panics is restarted, reloads its recipients from the
// journal, and every message, before and after the crash, is delivered;
// the journal ends empty.
func TestQueueCrashReloads(t *testing.T) {
	sink := testsink.Start(t)
	h := newHarness(t, sink.Addr, "")
	for i := range 20 {
		h.submit(fmt.Sprint("a", i), fmt.Sprintf("r%d@one.test", i), fmt.Sprintf("r%d@two.test", i))
	}
	pid := actor.NewPID(h.engine.system.Address(), "root/q-default")
	h.engine.system.Root.Send(pid, &messages.JobResult{}) // a nil Job: the queue panics
	for i := range 20 {
		h.submit(fmt.Sprint("b", i), fmt.Sprintf("r%d@one.test", i))
	}
	waitUntil(t, "all messages delivered", 20*time.Second, func() bool {
		got := ids(sink)
		for i := range 20 {
			if got[fmt.Sprint("a", i)] < 2 || got[fmt.Sprint("b", i)] < 1 {
				return false
			}
		}
		return true
	})
	waitUntil(t, "the journal emptied", 10*time.Second, func() bool {
		n, err := h.journal.Stats()
		return err == nil && n == 0
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.engine.Stop(ctx); err != nil {
		t.Errorf("Stop after a queue restart: %v", err)
	}
}

// Stop does not wait for deliveries that have not started: a destination
// still trying to connect gives its jobs back, and they stay in the
// journal for the next start.
func TestStopReturnsUnstartedJobs(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0") // accepts, never greets
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	h := newHarness(t, l.Addr().String(), `
[queue.connection.default]
timeout = { greeting = "1m" }
[queue.virtual.slow]
destination-connections = 1
`)
	for i := range 5 {
		h.submit(fmt.Sprint("s", i), fmt.Sprintf("r%d@slow.test", i))
	}
	time.Sleep(200 * time.Millisecond) // let the first connection start its greeting wait
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	err = h.engine.Stop(ctx)
	t.Logf("Stop took %v: %v", time.Since(start), err)
	if n, _ := h.journal.Stats(); n != 5 {
		t.Errorf("journal holds %d messages after Stop, want all 5", n)
	}
}
