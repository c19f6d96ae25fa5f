package actors

import (
	"testing"
	"time"

	"github.com/mtad/mtad/config"
	"github.com/mtad/mtad/limits"
)

// A refusal for want of a concurrency slot (polled) spends no
// connection-rate token.
func TestConcurrencyRefusalSpendsNoConnectionRate(t *testing.T) {
	cfg := &config.Config{}
	cfg.Queue.Limit = []config.Limit{{Name: "l", Key: []string{"rcpt_domain"}, ConnectionRate: limits.Rate{N: 100, Per: time.Minute}, Concurrency: 1}}
	store := limits.NewMemory()
	ls := applicable(cfg, limitValues{rcptDomain: "x.test"})
	now := time.Now()
	ok, _, _, held, _ := openConn(store, ls, now)
	if !ok {
		t.Fatal("first open refused")
	}
	for range 20 { // polls while the one slot is busy
		now = now.Add(time.Millisecond)
		if ok, _, reason, _, _ := openConn(store, ls, now); ok || reason != "concurrency" {
			t.Fatalf("poll: ok=%v reason=%q, want a concurrency refusal", ok, reason)
		}
	}
	releaseAll(store, held)
	if ok, _, reason, _, _ := openConn(store, ls, now.Add(time.Millisecond)); !ok {
		t.Errorf("second connection refused (%s) after one in the minute under a 100/1m connection rate", reason)
	}
}

// A site-keyed limit does not apply outside every site; local_ip keys
// follow the source address.
func TestLimitKeys(t *testing.T) {
	cfg := &config.Config{}
	cfg.Queue.Limit = []config.Limit{{Name: "per-site", Key: []string{"site"}, Rate: limits.Rate{N: 10, Per: time.Second}},
		{Name: "per-ip", Key: []string{"local_ip"}, Rate: limits.Rate{N: 10, Per: time.Second}}}
	outside := applicable(cfg, limitValues{rcptDomain: "a.test", localIP: "192.0.2.1"})
	if len(outside) != 1 || outside[0].limit.Name != "per-ip" {
		t.Errorf("outside every site: %+v, want only per-ip", outside)
	}
	a := applicable(cfg, limitValues{rcptDomain: "a.test", site: "google", localIP: "192.0.2.1"})
	b := applicable(cfg, limitValues{rcptDomain: "b.test", site: "google", localIP: "192.0.2.2"})
	if a[0].key != b[0].key {
		t.Errorf("one site, two keys: %q %q", a[0].key, b[0].key)
	}
	if a[1].key == b[1].key {
		t.Errorf("two source IPs share key %q", a[1].key)
	}
}
