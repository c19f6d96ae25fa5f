package server

import (
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"

	"github.com/mtad/mtad/internal/testsink"
)

// The metrics endpoint: refused without the token, and with it a scrape
// the Prometheus text parser reads, counting what happened.
func TestMetricsEndpoint(t *testing.T) {
	sink := testsink.Start(t)
	s, dir := startNode(t, relayConfig(sink.Addr, "1s")+`
[server.management]
bind = "127.0.0.1:0"
token = "s3cret"
`)
	if err := send(t, s.Addrs()[0].String(), "s@sender.test", []string{"m@one.test"}, message("metrics")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "delivery", 10*time.Second, func() bool { return eventFor(events(t, dir), "delivered", "m@one.test") != nil })
	url := "http://" + s.ManagementAddr().String() + "/metrics"
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("without the token: %s, want 401", resp.Status)
	}
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", "Bearer s3cret")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var p expfmt.TextParser
	families, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("scrape does not parse: %v", err)
	}
	delivered := 0.0
	for _, m := range families["mtad_events_total"].GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		if labels["event"] == "delivered" && labels["queue"] == "default" {
			delivered = m.GetCounter().GetValue()
		}
	}
	if delivered < 1 {
		t.Errorf("mtad_events_total{event=delivered,queue=default} = %v, want at least 1", delivered)
	}
	for _, name := range []string{"mtad_queue_messages", "mtad_queue_oldest_message_seconds", "mtad_queue_loaded_messages"} {
		if families[name] == nil {
			t.Errorf("no %s gauge", name)
		}
	}
	for _, name := range []string{"mtad_journal_user_bytes", "mtad_journal_wal_bytes_written", "mtad_journal_fsyncs_total", "mtad_journal_write_amplification"} {
		f := families[name]
		if f == nil || len(f.GetMetric()) != 1 {
			t.Errorf("no %s", name)
			continue
		}
		m := f.GetMetric()[0]
		if m.GetGauge().GetValue()+m.GetCounter().GetValue() <= 0 {
			t.Errorf("%s is not positive after a delivery", name)
		}
	}
	for _, name := range []string{"mtad_journal_commit_seconds", "mtad_accept_to_delivered_seconds"} {
		f := families[name]
		if f == nil || len(f.GetMetric()) == 0 || f.GetMetric()[0].GetHistogram().GetSampleCount() == 0 {
			t.Errorf("%s has no samples", name)
		}
	}
}
