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

	// JournalCommit observes synced journal commits.
	JournalCommit = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "mtad_journal_commit_seconds",
		Help:    "Latency of synced journal commits, by operation (accept, update, finish).",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2.5, 12), // 100 µs .. about 6 s
	}, []string{"op"})
)

func init() {
	Registry.MustRegister(Events, DeliveryLatency, Connections, Held, JournalCommit, QueueMessages,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
}

// Handler serves the registry in the Prometheus text format.
func Handler() http.Handler {
	return promhttp.HandlerFor(Registry, promhttp.HandlerOpts{Timeout: 10 * time.Second})
}
