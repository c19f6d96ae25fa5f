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
	if families["mtad_queue_messages"] == nil {
		t.Error("no mtad_queue_messages gauge")
	}
	for _, name := range []string{"mtad_journal_commit_seconds", "mtad_accept_to_delivered_seconds"} {
		f := families[name]
		if f == nil || len(f.GetMetric()) == 0 || f.GetMetric()[0].GetHistogram().GetSampleCount() == 0 {
			t.Errorf("%s has no samples", name)
		}
	}
}
