package webhook

import "github.com/prometheus/client_golang/prometheus"

// The metrics of a Dispatcher. They are per Dispatcher rather than
// package-level so that each one can be registered, and tested, on its
// own; register one Dispatcher's per registry.
var backlogDesc = prometheus.NewDesc("mtad_webhook_backlog",
	"Delivery events in a webhook endpoint's outbox, not yet acknowledged by the endpoint.",
	[]string{"endpoint"}, nil)

func newEventsMetric() *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mtad_webhook_events_total",
		Help: "Delivery events POSTed to a webhook endpoint, by result: sent (acknowledged with a 2xx) or retried (in a POST that failed and is repeated).",
	}, []string{"endpoint", "result"})
}

// Collectors returns the Dispatcher's metrics, for the caller to register:
// mtad_webhook_events_total{endpoint,result="sent|retried"} and
// mtad_webhook_backlog{endpoint}.
func (d *Dispatcher) Collectors() []prometheus.Collector {
	return []prometheus.Collector{d.events, backlogCollector{d}}
}

// backlogCollector reports each endpoint's backlog when scraped.
type backlogCollector struct{ d *Dispatcher }

func (c backlogCollector) Describe(ch chan<- *prometheus.Desc) { ch <- backlogDesc }

func (c backlogCollector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.d.senders {
		ch <- prometheus.MustNewConstMetric(backlogDesc, prometheus.GaugeValue, float64(s.backlog()), s.ep.Name)
	}
}
