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
