package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

const sampleMetrics = `# HELP mtad_journal_write_amplification Bytes written to disk per byte of user data.
# TYPE mtad_journal_write_amplification gauge
mtad_journal_write_amplification 3.25
# TYPE mtad_journal_wal_bytes_written gauge
mtad_journal_wal_bytes_written 1.048576e+06
# TYPE mtad_journal_flush_bytes counter
mtad_journal_flush_bytes 2048
# TYPE mtad_journal_level_bytes gauge
mtad_journal_level_bytes{level="0"} 10
mtad_journal_level_bytes{level="6"} 20
# TYPE mtad_journal_commit_seconds histogram
mtad_journal_commit_seconds_bucket{op="accept",le="0.001"} 5
mtad_journal_commit_seconds_bucket{op="accept",le="+Inf"} 6
mtad_journal_commit_seconds_sum{op="accept"} 0.01
mtad_journal_commit_seconds_count{op="accept"} 6
# TYPE mtad_queue_messages gauge
mtad_queue_messages{queue="default"} 700
mtad_queue_messages{queue="bulk"} 300
# TYPE go_goroutines gauge
go_goroutines 42
`

func TestJournalFromMetrics(t *testing.T) {
	m, err := parseMetrics(strings.NewReader(sampleMetrics))
	if err != nil {
		t.Fatal(err)
	}
	j := journalFrom(m)
	if j.WriteAmplification == nil || *j.WriteAmplification != 3.25 || j.WALBytesWritten == nil || *j.WALBytesWritten != 1<<20 ||
		j.FlushBytes == nil || *j.FlushBytes != 2048 {
		t.Errorf("named gauges: %+v", j)
	}
	if j.CompactBytes != nil || j.UserBytes != nil {
		t.Errorf("absent gauges are not nil: %v %v", j.CompactBytes, j.UserBytes)
	}
	want := []metricValue{{`mtad_journal_level_bytes{level="0"}`, 10}, {`mtad_journal_level_bytes{level="6"}`, 20}}
	if fmt.Sprint(j.Other) != fmt.Sprint(want) {
		t.Errorf("other = %v, want %v (histograms left out)", j.Other, want)
	}
	if v, ok := m.sum(metricQueueMsgs); !ok || v != 1000 {
		t.Errorf("queue = %v, %v; want the sum over queues, 1000", v, ok)
	}
	if _, ok := m.sum("mtad_journal_commit_seconds"); ok {
		t.Error("a histogram summed as a scalar")
	}
	if _, ok := metricFamilies(nil).sum(metricQueueMsgs); ok {
		t.Error("a nil scrape has a value")
	}
}

func TestParseMetricsRejectsGarbage(t *testing.T) {
	if _, err := parseMetrics(strings.NewReader("mtad_journal_x{ 1\n")); err == nil {
		t.Error("garbage parsed")
	}
}

func TestScrapeJournal(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprint(w, sampleMetrics)
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	if j := scrapeJournal(context.Background(), addr); j.Error != "" || j.WriteAmplification == nil {
		t.Errorf("journal %+v", j)
	}
	srv.Close()
	if j := scrapeJournal(context.Background(), addr); j.Error == "" {
		t.Error("a dead listener gave no error")
	}
	if j := scrapeJournal(context.Background(), "192.0.2.1:80"); !strings.Contains(j.Error, "only 127.0.0.1") {
		t.Errorf("non-loopback scrape: %q", j.Error)
	}
}
