package main

import (
	"os"
	"os/exec"
	"testing"
	"time"
)

func TestParseStatusKiB(t *testing.T) {
	status := []byte("Name:\tmtad\nVmPeak:\t  999 kB\nVmHWM:\t   12345 kB\nVmRSS:\t 100 kB\nRssAnon:\t 60 kB\n")
	tests := []struct {
		field string
		want  int64
		ok    bool
	}{
		{"VmRSS", 100, true}, {"VmHWM", 12345, true}, {"VmPeak", 999, true},
		{"VmSwap", 0, false}, {"Rss", 0, false}, // a prefix of RssAnon is not the field
	}
	for _, tt := range tests {
		got, err := parseStatusKiB(status, tt.field)
		if got != tt.want || (err == nil) != tt.ok {
			t.Errorf("%s: got %d, %v; want %d, ok %v", tt.field, got, err, tt.want, tt.ok)
		}
	}
	if _, err := parseStatusKiB([]byte("VmRSS:\t12 MB\n"), "VmRSS"); err == nil {
		t.Error("a unit other than kB was accepted")
	}
}

func TestSummariseRSS(t *testing.T) {
	samples := []rssSample{
		{0, 100, "injecting"}, {1, 300, "injecting"}, {2, 250, "waiting"},
		{3, 200, "draining"}, {4, 500, "draining"}, {5, 400, "draining"},
	}
	hwm := int64(450)
	s := summariseRSS(samples, &hwm)
	want := []stageMax{{"injecting", 300, 2}, {"waiting", 250, 1}, {"draining", 500, 3}}
	if len(s.ByStage) != len(want) {
		t.Fatalf("stages %+v", s.ByStage)
	}
	for i := range want {
		if s.ByStage[i] != want[i] {
			t.Errorf("stage %d = %+v, want %+v", i, s.ByStage[i], want[i])
		}
	}
	if s.PeakKiB != 500 || s.MaxSampled != 500 {
		t.Errorf("peak %d, max sampled %d; want 500 (a sample above VmHWM wins)", s.PeakKiB, s.MaxSampled)
	}
	if s := summariseRSS(nil, nil); s.PeakKiB != 0 || s.ByStage != nil {
		t.Errorf("empty: %+v", s)
	}
}

func TestRSSTimelineKeepsPeak(t *testing.T) {
	var samples []rssSample
	for i := range 100 {
		samples = append(samples, rssSample{T: float64(i), KiB: int64(i % 10)})
	}
	samples[37].KiB = 1000
	s := summariseRSS(samples, nil)
	tl := s.timeline(12)
	if len(tl) != 12 || tl[0].T != 0 || tl[11].T != 99 {
		t.Fatalf("timeline %+v", tl)
	}
	seen := false
	for i, x := range tl {
		seen = seen || x.KiB == 1000
		if i > 0 && x.T <= tl[i-1].T {
			t.Errorf("timeline out of order at %d: %+v", i, tl)
		}
	}
	if !seen {
		t.Errorf("peak missing from %+v", tl)
	}
	if got := s.timeline(200); len(got) != 100 {
		t.Errorf("short run: %d points", len(got))
	}
}

func TestRSSSamplerReadsAChild(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("no /proc")
	}
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Skip("no sleep binary:", err)
	}
	d := &daemon{cmd: cmd, exited: make(chan struct{})}
	go func() {
		d.waitErr = cmd.Wait()
		close(d.exited)
	}()
	defer d.kill()
	time.Sleep(50 * time.Millisecond) // past the exec, so VmRSS is the sleep's
	r := startRSS(d, newClock(), "first")
	r.setStage("second")
	samples := r.stop()
	if len(samples) < 3 || samples[0].Stage != "first" || samples[len(samples)-1].Stage != "second" || samples[0].KiB <= 0 {
		t.Errorf("samples %+v", samples)
	}
}
