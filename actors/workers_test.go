package actors

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Tasks never wait for a free worker: a task that blocks until a later
// one runs cannot deadlock the pool, and after release (or with no pool
// at all) tasks still run, each on a goroutine of its own.
func TestWorkersRunEveryTask(t *testing.T) {
	for _, name := range []string{"pool", "released", "nil"} {
		t.Run(name, func(t *testing.T) {
			w := newWorkers()
			switch name {
			case "released":
				w.release()
			case "nil":
				w.release()
				w = nil
			}
			defer w.release()
			const n = 500
			var ran atomic.Int64
			var wg sync.WaitGroup
			gate := make(chan struct{})
			wg.Add(n + 1)
			for range n {
				w.Go(func() {
					defer wg.Done()
					<-gate // held until the last task runs
					ran.Add(1)
				})
			}
			w.Schedule(func() { close(gate); wg.Done() })
			done := make(chan struct{})
			go func() { wg.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatalf("%d of %d tasks ran in 10 s", ran.Load(), n)
			}
			if ran.Load() != n {
				t.Fatalf("ran %d tasks, want %d", ran.Load(), n)
			}
			if w != nil && w.Throughput() != mailboxThroughput {
				t.Errorf("throughput %d", w.Throughput())
			}
		})
	}
}
