// Package metrics declares mtad's Prometheus metrics, once, with their help
// text, in a registry of mtad's own. Label values are bounded: event kinds,
// virtual queue names and reasons from the configuration, never a
// recipient, domain or message id.
package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Registry holds every mtad metric, plus the Go and process collectors.
var Registry = prometheus.NewRegistry()

var (
	// Events counts delivery-log events by kind and virtual queue.
	Events = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mtad_events_total",
		Help: "Delivery events (accepted, attempt, delivered, deferred, failed, dsn, shaping) by virtual queue.",
	}, []string{"event", "queue"})

	// DeliveryLatency observes arrival to delivery per recipient.
	DeliveryLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "mtad_accept_to_delivered_seconds",
		Help:    "Time from acceptance to delivery of a recipient, by virtual queue.",
		Buckets: prometheus.ExponentialBuckets(0.001, 4, 12), // 1 ms .. about 1.2 h
	}, []string{"queue"})

	// Connections is the outbound connections open, by virtual queue.
	Connections = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "mtad_outbound_connections",
		Help: "Outbound connections open (dialing or connected), by virtual queue.",
	}, []string{"queue"})

	// Held counts the times a destination held its work back, by reason.
	Held = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mtad_held_total",
		Help: "Times a destination held its ready work back under a limit or a suspension, by reason (rate, concurrency, suspended).",
	}, []string{"reason"})

	// QueueMessages is the messages a virtual queue holds.
	QueueMessages = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "mtad_queue_messages",
		Help: "Messages with pending recipients held by a virtual queue.",
	}, []string{"queue"})

	// QueueOldest is the age of the oldest message a virtual queue holds.
	QueueOldest = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "mtad_queue_oldest_message_seconds",
		Help: "Age of the oldest message with pending recipients in a virtual queue (0 when empty); updated every 10 s.",
	}, []string{"queue"})
	// QueueLoaded is the messages of a queue whose envelope is in memory.
	QueueLoaded = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "mtad_queue_loaded_messages",
		Help: "Messages of a virtual queue whose envelope is in memory; the others wait in the journal (parked) with only their id and due time in memory.",
	}, []string{"queue"})
	// HeldSeconds sums how long destinations held work back, by reason.
	HeldSeconds = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mtad_held_seconds_total",
		Help: "Sum over holds of the time a destination held its ready work back, by reason (rate, concurrency, suspended).",
	}, []string{"reason"})
	// DNSCache counts resolver cache lookups by result (hit, miss).
	DNSCache = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mtad_dns_cache_lookups_total",
		Help: "DNS resolver cache lookups by result: hit (answered from the cache, negative answers included) or miss (asked a nameserver).",
	}, []string{"result"})
	// JournalCommit observes journal commits.
	JournalCommit = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "mtad_journal_commit_seconds",
		Help:    "Latency of journal commits, by operation: accept, update and finish are synced; defer (a recipient deferred again) is not.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2.5, 12), // 100 µs .. about 6 s
	}, []string{"op"})
)

func init() {
	Registry.MustRegister(Events, DeliveryLatency, Connections, Held, JournalCommit, QueueMessages,
		QueueOldest, QueueLoaded, HeldSeconds, DNSCache,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
}

// Handler serves the registry in the Prometheus text format.
func Handler() http.Handler {
	return promhttp.HandlerFor(Registry, promhttp.HandlerOpts{Timeout: 10 * time.Second})
}

// JournalStats is what the journal collector reads at each scrape.
type JournalStats struct {
	UserBytes, WALBytes, FlushBytes, CompactBytes, BlobBytes, Fsyncs uint64
	WriteAmplification                                               float64
}

// journalCollector exports a journal's write statistics at scrape time.
type journalCollector struct{ read func() JournalStats }

var journalDescs = map[string]*prometheus.Desc{
	"user":    prometheus.NewDesc("mtad_journal_user_bytes", "Bytes of records committed to the journal (the WAL's logical input).", nil, nil),
	"wal":     prometheus.NewDesc("mtad_journal_wal_bytes_written", "Bytes written to the journal's WAL files.", nil, nil),
	"flush":   prometheus.NewDesc("mtad_journal_flush_bytes", "Bytes of sstables and blob files written by memtable flushes.", nil, nil),
	"compact": prometheus.NewDesc("mtad_journal_compact_bytes", "Bytes of sstables and blob files written by compactions.", nil, nil),
	"blob":    prometheus.NewDesc("mtad_journal_blob_bytes", "The part of flush and compaction bytes that went to blob files (separated message bodies).", nil, nil),
	"fsyncs":  prometheus.NewDesc("mtad_journal_fsyncs_total", "WAL fsyncs; one serves every commit waiting on it.", nil, nil),
	"wamp":    prometheus.NewDesc("mtad_journal_write_amplification", "(WAL + flush + compaction bytes written) / bytes committed, since start.", nil, nil),
}

// JournalCollector returns a collector reading read at every scrape.
func JournalCollector(read func() JournalStats) prometheus.Collector { return journalCollector{read} }

func (c journalCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range journalDescs {
		ch <- d
	}
}

func (c journalCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.read()
	for k, v := range map[string]uint64{"user": s.UserBytes, "wal": s.WALBytes, "flush": s.FlushBytes,
		"compact": s.CompactBytes, "blob": s.BlobBytes} {
		ch <- prometheus.MustNewConstMetric(journalDescs[k], prometheus.GaugeValue, float64(v))
	}
	ch <- prometheus.MustNewConstMetric(journalDescs["fsyncs"], prometheus.CounterValue, float64(s.Fsyncs))
	ch <- prometheus.MustNewConstMetric(journalDescs["wamp"], prometheus.GaugeValue, s.WriteAmplification)
}
