package main

import (
	"fmt"
	"strings"
	"sync"
	"time"
)

// Bounds of the RSS sampler.
const (
	rssInterval    = time.Second
	maxRSSSamples  = 7 * 24 * 3600 // a week of seconds; a run's timeout ends it long before
	timelinePoints = 12            // samples shown in the text report
)

// rssSample is one reading of mtad's VmRSS.
type rssSample struct {
	T     float64 `json:"t"` // seconds since the scenario began
	KiB   int64   `json:"kib"`
	Stage string  `json:"stage"`
}

// rssSampler reads a daemon's VmRSS every rssInterval, and at every stage
// change, on a goroutine of its own until stop. Any goroutine may call
// setStage; stop is called once, by the owner.
type rssSampler struct {
	d     *daemon
	clock clock

	mu      sync.Mutex
	stage   string      // guarded by mu
	samples []rssSample // guarded by mu

	quit, done chan struct{}
}

// startRSS begins sampling d in stage. The first reading comes after
// rssInterval: one taken at once may catch d between fork and exec.
func startRSS(d *daemon, c clock, stage string) *rssSampler {
	r := &rssSampler{d: d, clock: c, stage: stage, quit: make(chan struct{}), done: make(chan struct{})}
	go r.loop()
	return r
}

func (r *rssSampler) loop() {
	defer close(r.done)
	t := time.NewTicker(rssInterval)
	defer t.Stop()
	for {
		select {
		case <-r.quit:
			return
		case <-r.d.exited:
			return
		case <-t.C:
			r.sample()
		}
	}
}

// sample records one reading; a process that is gone gives none.
func (r *rssSampler) sample() {
	kib, err := r.d.rss()
	if err != nil || kib == 0 { // gone, or not yet past its exec
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.samples) < maxRSSSamples {
		r.samples = append(r.samples, rssSample{T: seconds(r.clock.now()), KiB: kib, Stage: r.stage})
	}
}

// setStage closes the current stage with a reading and opens the next.
func (r *rssSampler) setStage(stage string) {
	r.sample()
	r.mu.Lock()
	r.stage = stage
	r.mu.Unlock()
	r.sample()
}

// stop ends the sampling, with a last reading, and returns the samples.
func (r *rssSampler) stop() []rssSample {
	r.sample()
	close(r.quit)
	<-r.done
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.samples
}

// rssStats summarises the memory of one mtad process.
type rssStats struct {
	PeakKiB    int64       `json:"peak_kib"`  // VmHWM at the end, or the largest sample when unreadable
	HWMKiB     *int64      `json:"vmhwm_kib"` // null when unreadable
	MaxSampled int64       `json:"max_sampled_kib"`
	ByStage    []stageMax  `json:"by_stage"`
	Samples    []rssSample `json:"samples"`
}

// stageMax is the largest VmRSS seen in one stage.
type stageMax struct {
	Stage   string `json:"stage"`
	MaxKiB  int64  `json:"max_kib"`
	Samples int    `json:"samples"`
}

// summariseRSS builds the stats from the samples and the VmHWM reading.
func summariseRSS(samples []rssSample, hwm *int64) *rssStats {
	s := &rssStats{HWMKiB: hwm, Samples: samples}
	for _, x := range samples {
		s.MaxSampled = max(s.MaxSampled, x.KiB)
		i := len(s.ByStage) - 1
		if i < 0 || s.ByStage[i].Stage != x.Stage {
			s.ByStage = append(s.ByStage, stageMax{Stage: x.Stage})
			i++
		}
		s.ByStage[i].MaxKiB = max(s.ByStage[i].MaxKiB, x.KiB)
		s.ByStage[i].Samples++
	}
	s.PeakKiB = s.MaxSampled
	if hwm != nil {
		s.PeakKiB = max(*hwm, s.MaxSampled)
	}
	return s
}

// timeline picks n samples evenly spread over the run; the largest
// replaces the pick nearest to it, so it is always shown.
func (s *rssStats) timeline(n int) []rssSample {
	if len(s.Samples) <= n || n < 2 {
		return s.Samples
	}
	peak := 0
	for i, x := range s.Samples {
		if x.KiB > s.Samples[peak].KiB {
			peak = i
		}
	}
	idx := make([]int, n)
	near := 0
	for k := range idx {
		idx[k] = k * (len(s.Samples) - 1) / (n - 1)
		if abs(idx[k]-peak) < abs(idx[near]-peak) {
			near = k
		}
	}
	idx[near] = peak
	out := make([]rssSample, n)
	for k, i := range idx {
		out[k] = s.Samples[i]
	}
	return out
}

func abs(x int) int { return max(x, -x) }

// rows prints the memory summary of the process called who.
func (s *rssStats) rows(row func(k, f string, a ...any), who string) {
	if s == nil {
		return
	}
	row(who+" peak RSS", "%s (VmHWM %s, largest 1 s sample %s)", mib(s.PeakKiB), rssText(s.HWMKiB), mib(s.MaxSampled))
	for _, st := range s.ByStage {
		row("  max RSS while "+st.Stage, "%s (%d samples)", mib(st.MaxKiB), st.Samples)
	}
	var tl []string
	for _, x := range s.timeline(timelinePoints) {
		tl = append(tl, fmt.Sprintf("%.0fs %.0f", x.T, float64(x.KiB)/1024))
	}
	if len(tl) > 0 {
		row("  RSS timeline (MiB)", "%s", strings.Join(tl, ", "))
	}
}

func mib(kib int64) string { return fmt.Sprintf("%.1f MiB", float64(kib)/1024) }
