package persistence

import (
	"bytes"
	"testing"

	dto "github.com/prometheus/client_model/go"

	"github.com/mtad/mtad/messages"
)

// The Accept benchmarks commit one 5 KiB message with two recipients per
// op. Serial shows the cost of one fsync per message; Parallel shows what
// Pebble's grouping of concurrent synced commits buys. Both report
// msgs/s and msgs/fsync (commits that shared each WAL fsync).

var benchBody = bytes.Repeat([]byte("0123456789abcdef"), 5<<10/16)

func benchEnvelope(id messages.MsgID) *messages.Envelope {
	env := sampleEnvelope(id)
	env.Rcpts = env.Rcpts[:2]
	env.Size = int64(len(benchBody))
	return env
}

func BenchmarkAcceptSerial(b *testing.B) {
	j := openBench(b)
	fsyncs := fsyncCount(j)
	b.SetBytes(int64(len(benchBody)))
	for b.Loop() {
		if err := j.Accept(benchEnvelope(j.NextID()), benchBody); err != nil {
			b.Fatal(err)
		}
	}
	report(b, j, fsyncs)
}

func BenchmarkAcceptParallel(b *testing.B) {
	j := openBench(b)
	fsyncs := fsyncCount(j)
	b.SetBytes(int64(len(benchBody)))
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := j.Accept(benchEnvelope(j.NextID()), benchBody); err != nil {
				b.Error(err)
				return
			}
		}
	})
	report(b, j, fsyncs)
}

func openBench(b *testing.B) *Journal {
	j, err := Open(b.TempDir(), Options{Logger: testLogger(b)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { j.Close() })
	return j
}

func report(b *testing.B, j *Journal, fsyncsBefore uint64) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	if n := fsyncCount(j) - fsyncsBefore; n > 0 {
		b.ReportMetric(float64(b.N)/float64(n), "msgs/fsync")
	}
}

// fsyncCount returns the number of WAL fsyncs so far, from Pebble's fsync
// latency histogram.
func fsyncCount(j *Journal) uint64 {
	h := j.db.Metrics().LogWriter.FsyncLatency
	if h == nil {
		return 0
	}
	var m dto.Metric
	if err := h.Write(&m); err != nil {
		return 0
	}
	return m.GetHistogram().GetSampleCount()
}

// The AcceptBody benchmarks stream one message per op through NewBody and
// AcceptBody, the body arriving in 32 KiB writes as from a network
// connection: 5 KiB (one chunk, one synced batch) from 16 goroutines, and
// 10 MiB (40 unsynced chunk batches, then a synced one) from one. Each
// message is finished after it is timed, so the journal stays small.
func BenchmarkAcceptBody(b *testing.B) {
	for _, bc := range []struct {
		name     string
		size     int
		parallel int
	}{
		{"5KiB", 5 << 10, 16},
		{"10MiB", 10 << 20, 1},
	} {
		b.Run(bc.name, func(b *testing.B) {
			j := openBench(b)
			body := bodyOf(1, bc.size)
			b.SetBytes(int64(bc.size))
			b.ReportAllocs()
			b.SetParallelism(bc.parallel)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					env := benchEnvelope(j.NextID())
					if err := streamBody(j, env, body); err != nil {
						b.Error(err)
						return
					}
					if err := j.Finish(env.ID, len(env.Rcpts)); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
			b.Logf("%+v", j.WriteStats())
		})
	}
}

func streamBody(j *Journal, env *messages.Envelope, body []byte) error {
	w := j.NewBody(env.ID)
	for p := body; len(p) > 0; {
		n := min(len(p), 32<<10)
		if _, err := w.Write(p[:n]); err != nil {
			w.Abort()
			return err
		}
		p = p[n:]
	}
	if err := j.AcceptBody(env, w); err != nil {
		w.Abort()
		return err
	}
	return nil
}
