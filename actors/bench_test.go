package actors

import (
	"bytes"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mtad/mtad/internal/testsink"
	"github.com/mtad/mtad/messages"
)

// BenchmarkEngineRelay measures the delivery path without submission: a
// 5 KiB message journaled (synced), enqueued, relayed over loopback SMTP
// to an in-process sink through the root, queue, destination and
// connection actors, and finished in the journal. Twenty goroutines
// accept at once, like the sessions of a busy listener. The sink and the
// journal's fsyncs run in the same process, so compare builds with
// `go test -run XXX -bench EngineRelay -count 6 ./actors` and look at the
// spread, not at one figure. It is the in-process counterpart of
// `go run ./bench` for the engine's share of the work (the actor hops,
// the journal writes, the outbound transaction).
func BenchmarkEngineRelay(b *testing.B) {
	const acceptors = 20
	sink := testsink.Start(b)
	h := newHarness(b, sink.Addr, "")
	body := append([]byte("Subject: bench\r\n\r\n"), bytes.Repeat([]byte("0123456789abcdef0123456789abcde\r\n"), 160)...)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Pointer[error]
	for range acceptors {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				env := &messages.Envelope{ID: h.journal.NextID(), From: "s@sender.test", Arrival: time.Now(),
					Rcpts: []messages.Recipient{{Index: 0, Addr: "r@relay.test"}}, Size: int64(len(body))}
				h.engine.Place(env)
				if err := h.journal.Accept(env, body); err != nil {
					failed.CompareAndSwap(nil, &err)
					return
				}
				h.engine.Enqueue(env)
			}
		})
	}
	wg.Wait()
	if err := failed.Load(); err != nil {
		b.Fatal(*err)
	}
	deadline := time.Now().Add(time.Minute + time.Duration(b.N)*time.Millisecond)
	for sink.Count() < b.N {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d messages reached the sink", sink.Count(), b.N)
		}
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	waitUntil(b, "the journal empty", 30*time.Second, func() bool { n, _ := h.journal.Stats(); return n == 0 })
}
