package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// Bounds on reading mtad's /metrics.
const (
	scrapeTimeout  = 10 * time.Second
	maxScrapeBytes = 16 << 20
)

// Journal gauges the report names; any other mtad_journal_* gauge or
// counter is listed as it comes. They are new in mtad: absent is "n/a".
const (
	journalPrefix     = "mtad_journal_"
	metricWriteAmp    = "mtad_journal_write_amplification"
	metricWALBytes    = "mtad_journal_wal_bytes_written"
	metricFlushBytes  = "mtad_journal_flush_bytes"
	metricCompactByte = "mtad_journal_compact_bytes"
	metricUserBytes   = "mtad_journal_user_bytes"
	metricQueueMsgs   = "mtad_queue_messages"
)

// metricFamilies is one scrape, by metric name.
type metricFamilies map[string]*dto.MetricFamily

// scrapeMetrics GETs http://addr/metrics (addr on loopback; no token is
// needed there) and parses the Prometheus text format.
func scrapeMetrics(ctx context.Context, addr string) (metricFamilies, error) {
	if err := requireLoopback(addr); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, scrapeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	return parseMetrics(io.LimitReader(resp.Body, maxScrapeBytes))
}

// parseMetrics reads the Prometheus text exposition format.
func parseMetrics(r io.Reader) (metricFamilies, error) {
	var p expfmt.TextParser
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, fmt.Errorf("parse /metrics: %w", err)
	}
	return fams, nil
}

// sum adds up every series of a gauge, counter or untyped metric; ok is
// false when the metric is absent or of another type.
func (m metricFamilies) sum(name string) (total float64, ok bool) {
	f := m[name]
	if f == nil {
		return 0, false
	}
	for _, s := range f.GetMetric() {
		v, isScalar := scalar(f.GetType(), s)
		if !isScalar {
			return 0, false
		}
		total += v
	}
	return total, len(f.GetMetric()) > 0
}

func scalar(t dto.MetricType, m *dto.Metric) (float64, bool) {
	switch t {
	case dto.MetricType_GAUGE:
		return m.GetGauge().GetValue(), true
	case dto.MetricType_COUNTER:
		return m.GetCounter().GetValue(), true
	case dto.MetricType_UNTYPED:
		return m.GetUntyped().GetValue(), true
	}
	return 0, false
}

// journalStats are the journal's metrics at the end of a scenario.
type journalStats struct {
	WriteAmplification *float64      `json:"write_amplification"`
	WALBytesWritten    *float64      `json:"wal_bytes_written"`
	FlushBytes         *float64      `json:"flush_bytes"`
	CompactBytes       *float64      `json:"compact_bytes"`
	UserBytes          *float64      `json:"user_bytes"`
	Other              []metricValue `json:"other,omitempty"` // other mtad_journal_* gauges and counters, by series
	Error              string        `json:"error,omitempty"` // why there are none
}

// metricValue is one series: its name with labels, and its value.
type metricValue struct {
	Series string  `json:"series"`
	Value  float64 `json:"value"`
}

// journalFrom picks the journal metrics out of a scrape.
func journalFrom(m metricFamilies) *journalStats {
	opt := func(name string) *float64 {
		if v, ok := m.sum(name); ok {
			return &v
		}
		return nil
	}
	j := &journalStats{
		WriteAmplification: opt(metricWriteAmp), WALBytesWritten: opt(metricWALBytes),
		FlushBytes: opt(metricFlushBytes), CompactBytes: opt(metricCompactByte), UserBytes: opt(metricUserBytes),
	}
	named := []string{metricWriteAmp, metricWALBytes, metricFlushBytes, metricCompactByte, metricUserBytes}
	for name, f := range m {
		if !strings.HasPrefix(name, journalPrefix) || slices.Contains(named, name) {
			continue
		}
		for _, s := range f.GetMetric() {
			if v, ok := scalar(f.GetType(), s); ok {
				j.Other = append(j.Other, metricValue{Series: seriesName(name, s), Value: v})
			}
		}
	}
	slices.SortFunc(j.Other, func(a, b metricValue) int { return strings.Compare(a.Series, b.Series) })
	return j
}

// seriesName renders name{label="value",...} with the labels sorted.
func seriesName(name string, m *dto.Metric) string {
	if len(m.GetLabel()) == 0 {
		return name
	}
	labels := make([]string, 0, len(m.GetLabel()))
	for _, l := range m.GetLabel() {
		labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
	}
	slices.Sort(labels)
	return name + "{" + strings.Join(labels, ",") + "}"
}

// scrapeJournal scrapes addr and keeps the journal metrics; a failed
// scrape is recorded in the result, not returned: the metrics are a bonus.
func scrapeJournal(ctx context.Context, addr string) *journalStats {
	m, err := scrapeMetrics(ctx, addr)
	if err != nil {
		return &journalStats{Error: err.Error()}
	}
	return journalFrom(m)
}

// rows prints the journal metrics into a report.
func (j *journalStats) rows(row func(k, f string, a ...any)) {
	if j == nil {
		return
	}
	if j.Error != "" {
		row("journal metrics", "n/a (%s)", j.Error)
		return
	}
	row("journal write amplification", "%s", optText(j.WriteAmplification, "%.2f"))
	row("  WAL bytes written", "%s", optBytes(j.WALBytesWritten))
	row("  flush bytes", "%s", optBytes(j.FlushBytes))
	row("  compaction bytes", "%s", optBytes(j.CompactBytes))
	row("  user bytes", "%s", optBytes(j.UserBytes))
	for _, o := range j.Other {
		row("  "+o.Series, "%g", o.Value)
	}
}

func optBytes(v *float64) string {
	if v == nil {
		return "n/a"
	}
	return fmt.Sprintf("%.0f (%.1f MiB)", *v, *v/(1<<20))
}
