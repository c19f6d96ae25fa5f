package persistence

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mtad/mtad/messages"
)

// TestMeasureBacklog is the measurement behind the value separation
// settings in tuning.go, not a test: it runs only with
// MTAD_MEASURE="msgs=N,size=BYTES,keep=PERCENT". Sixteen goroutines
// stream N messages of BYTES random bytes into a journal; each finishes
// its message of 64 messages before unless it falls in the KEEP percent
// that stays queued (deferred mail). It does so with value separation off
// and at a few thresholds, and logs the write statistics of each run.
func TestMeasureBacklog(t *testing.T) {
	spec := os.Getenv("MTAD_MEASURE")
	if spec == "" {
		t.Skip("set MTAD_MEASURE=msgs=N,size=BYTES,keep=PERCENT")
	}
	p := map[string]int{"msgs": 100000, "size": 5 << 10, "keep": 100}
	for _, kv := range strings.Split(spec, ",") {
		k, v, _ := strings.Cut(kv, "=")
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatalf("%s: %v", kv, err)
		}
		p[k] = n
	}
	for _, from := range []int{-1, 256, 1 << 10, 4 << 10} {
		t.Run(fmt.Sprintf("separate=%d", from), func(t *testing.T) {
			measure(t, from, p["msgs"], p["size"], p["keep"])
		})
	}
}

func measure(t *testing.T, from, msgs, size, keep int) {
	j, err := Open(t.TempDir(), Options{Logger: testLogger(t), separateFrom: from})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			var ring [64]*messages.Envelope
			body := make([]byte, size)
			for i := 0; next.Add(1) <= int64(msgs); i++ {
				env := benchEnvelope(j.NextID())
				io.ReadFull(newBodySource(env.ID, size), body) // each its own: compression sees no repeats
				if err := streamBody(j, env, body); err != nil {
					t.Error(err)
					return
				}
				old := ring[i%len(ring)]
				ring[i%len(ring)] = env
				if old != nil && int(old.ID*2654435761%100) >= keep {
					if err := j.Finish(old.ID, len(old.Rcpts)); err != nil {
						t.Error(err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	s := j.WriteStats()
	m := j.db.Metrics()
	if os.Getenv("MTAD_MEASURE_VERBOSE") != "" {
		t.Log(m.String())
	}
	t.Logf("%d msgs of %d bytes, %d%% kept, separate from %d: %.0f msgs/s", msgs, size, keep, from, float64(msgs)/elapsed.Seconds())
	t.Logf("WAL in %d MiB; flushed %d MiB, compacted %d MiB (blob %d MiB); write amplification %.2f; disk %d MiB",
		s.WALLogicalBytes>>20, s.FlushedBytes>>20, s.CompactedBytes>>20, s.BlobBytes>>20, s.WriteAmplification, m.DiskSpaceUsage()>>20)
}
