package main

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// scenarioConfig parses args as runMain does, scenario defaults included.
func scenarioConfig(t *testing.T, args ...string) (config, error) {
	t.Helper()
	var cfg config
	fs := newFlagSet(&cfg)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return cfg, cfg.finish(fs)
}

func TestScenarioDefaults(t *testing.T) {
	tests := []struct {
		args          []string
		n, size, conc int
		timeout       time.Duration
		temp, perm    float64
	}{
		{nil, 20000, 5120, 20, 10 * time.Minute, 0, 0},
		{[]string{"-scenario", "backlog"}, 1_000_000, 1024, 20, time.Hour, 0, 0},
		{[]string{"-scenario", "backlog", "-n", "20000", "-c", "5"}, 20000, 1024, 5, time.Hour, 0, 0},
		{[]string{"-scenario", "recovery", "-size", "2048"}, 1_000_000, 2048, 20, time.Hour, 0, 0},
		{[]string{"-scenario", "failures"}, 50000, 5120, 20, 10 * time.Minute, 0.10, 0.02},
		{[]string{"-scenario", "failures", "-perm-fail", "0", "-n", "9"}, 9, 5120, 20, 10 * time.Minute, 0.10, 0},
		{[]string{"-scenario", "large", "-timeout", "5m"}, 20, 5120, 4, 5 * time.Minute, 0, 0},
	}
	for _, tt := range tests {
		cfg, err := scenarioConfig(t, tt.args...)
		if err != nil {
			t.Errorf("%v: %v", tt.args, err)
			continue
		}
		got := [...]any{cfg.n, cfg.size, cfg.conc, cfg.timeout, cfg.tempFail, cfg.permFail}
		want := [...]any{tt.n, tt.size, tt.conc, tt.timeout, tt.temp, tt.perm}
		if got != want {
			t.Errorf("%v: got %v, want %v", tt.args, got, want)
		}
	}
}

func TestScenarioFlagValidation(t *testing.T) {
	tests := []struct {
		args []string
		want string // part of the error; "" for none
	}{
		{[]string{"-scenario", "backlog", "-n", "100"}, ""},
		{[]string{"-scenario", "large", "-large-sizes", "600,2000"}, ""},
		{[]string{"-scenario", "recovery", "-data-dir", "/tmp/x"}, ""},
		{[]string{"-cpuprofile", "c.pprof", "-memprofile", "m.pprof"}, ""},
		{[]string{"-scenario", "nope"}, "-scenario"},
		{[]string{"-scenario", "backlog", "-config", "x.toml"}, "-config: -scenario backlog writes its own mtad config"},
		{[]string{"-scenario", "failures", "-config", "x.toml"}, "-config"},
		{[]string{"-scenario", "backlog", "-target", "127.0.0.1:2525", "-sink-listen", "127.0.0.1:2526"}, "-target"},
		{[]string{"-scenario", "recovery", "-direct-only"}, "-direct-only"},
		{[]string{"-scenario", "backlog", "-temp-fail", "0.1"}, "-temp-fail"},
		{[]string{"-scenario", "failures", "-temp-fail", "0", "-perm-fail", "0"}, "above 0"},
		{[]string{"-scenario", "failures", "-data-dir", "/tmp/x"}, "-data-dir"},
		{[]string{"-scenario", "large", "-size", "2000"}, "-size"},
		{[]string{"-scenario", "large", "-large-sizes", "100"}, "-large-sizes"},
		{[]string{"-scenario", "large", "-data-dir", "/tmp/x"}, "-data-dir"},
		{[]string{"-large-sizes", "1000"}, "-large-sizes"},
		{[]string{"-scenario", "backlog", "-large-sizes", "1000"}, "-large-sizes"},
		{[]string{"-profile-seconds", "0"}, "-profile-seconds"},
		{[]string{"-direct-only", "-cpuprofile", "c.pprof"}, "-cpuprofile"},
		{[]string{"-cpuprofile", "p", "-memprofile", "p"}, "different"},
		{[]string{"-scenario", "failures", "-pairs", "1"}, ""},
		{[]string{"-scenario", "failures", "-pairs", "0"}, "-pairs 0: -scenario failures needs at least 1 pair"},
		{[]string{"-pairs", "3"}, ""},
		{[]string{"-pairs", "0"}, "-pairs 0: at least 1 pair"},
		{[]string{"-pairs", "2", "-skip-direct"}, "drop -direct-only, -skip-direct, -target and -data-dir"},
		{[]string{"-pairs", "2", "-direct-only"}, "drop -direct-only"},
		{[]string{"-pairs", "2", "-data-dir", "/tmp/x"}, "-data-dir"},
		{[]string{"-pairs", "2", "-target", "127.0.0.1:2525", "-sink-listen", "127.0.0.1:2526"}, "-target"},
		{[]string{"-skip-direct"}, ""},
		{[]string{"-scenario", "large", "-pairs", "2"}, "-pairs applies to -scenario throughput and failures only"},
	}
	for _, tt := range tests {
		_, err := scenarioConfig(t, tt.args...)
		if (err == nil) != (tt.want == "") || (err != nil && !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("%v: error %v, want one containing %q", tt.args, err, tt.want)
		}
	}
}

func TestSizeListFlag(t *testing.T) {
	var s sizeList
	if err := s.Set("10485760, 52428800"); err != nil || s.String() != "10485760,52428800" {
		t.Errorf("Set: %v, %q", err, s.String())
	}
	for _, bad := range []string{"", "1,,2", "-5", "10MB"} {
		if err := s.Set(bad); err == nil {
			t.Errorf("Set(%q) accepted", bad)
		}
	}
}

func TestRunMainRefusesConfigWithScenario(t *testing.T) {
	var out, errOut bytes.Buffer
	code := runMain([]string{"-scenario", "backlog", "-config", "mine.toml"}, &out, &errOut)
	if code != 2 || !strings.Contains(errOut.String(), "writes its own mtad config") {
		t.Errorf("exit %d, stderr %q", code, errOut.String())
	}
}

// runFakeScenario runs a scenario against the fake mtad.
func runFakeScenario(t *testing.T, args ...string) *report {
	t.Helper()
	exe := fakeMtadExe(t, "relay")
	cfg, err := scenarioConfig(t, append([]string{"-mtad", exe, "-timeout", "20s"}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := runTest(t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func TestBacklogScenarioWithFakeMtad(t *testing.T) {
	rep := runFakeScenario(t, "-scenario", "backlog", "-n", "60", "-c", "3", "-size", "600")
	b := rep.Backlog
	if !rep.OK || b == nil || rep.Main == nil {
		t.Fatalf("report: ok %v, problems %v, failed %v", rep.OK, rep.Problems, rep.Failed)
	}
	// The fake relays each message on a goroutine of its own, so the last
	// ones may make their first attempt after the release: not every
	// recipient is sure to be deferred, but some must be.
	if b.Accepted != 60 || b.Delivered != 60 || b.Missing != 0 || rep.Main.Deferred == 0 {
		t.Errorf("accepted %d, delivered %d, missing %d, deferred %d", b.Accepted, b.Delivered, b.Missing, rep.Main.Deferred)
	}
	if b.QueueAtRelease == nil || *b.QueueAtRelease < 60 {
		t.Errorf("queue at release %v, want 60 from the fake's gauge", b.QueueAtRelease)
	}
	if b.RSS == nil || b.RSS.PeakKiB <= 0 || len(b.RSS.ByStage) == 0 || b.RSS.ByStage[0].Stage != "injecting" {
		t.Errorf("rss: %+v", b.RSS)
	}
	if j := b.Journal; j == nil || j.WriteAmplification == nil || *j.WriteAmplification != 1.5 || j.UserBytes != nil || len(j.Other) != 1 {
		t.Errorf("journal: %+v", j)
	}
	if !strings.Contains(rep.MtadConfigs["backlog"], `retry = ['30s']`) {
		t.Errorf("config: %q", rep.MtadConfigs["backlog"])
	}
	var buf bytes.Buffer
	if err := rep.writeText(&buf); err != nil || !strings.Contains(buf.String(), "time to drain") ||
		!regexp.MustCompile(`journal write amplification +1\.50\n`).MatchString(buf.String()) {
		t.Errorf("text report: %v\n%s", err, buf.String())
	}
}

// The fake keeps its queue in memory, so a SIGKILL loses it: the scenario
// must say so.
func TestRecoveryScenarioCatchesLoss(t *testing.T) {
	rep := runFakeScenario(t, "-scenario", "recovery", "-n", "30", "-c", "2", "-size", "600", "-timeout", "4s") // it waits for the lost mail until the timeout
	rc := rep.Recovery
	if rc == nil || rc.RestartTo250 == nil || *rc.RestartTo250 > restartLimit.Seconds() {
		t.Fatalf("recovery: %+v", rc)
	}
	if rc.Accepted != 30 || rc.Missing != 30 || rc.Delivered != 1 {
		t.Errorf("accepted %d, missing %d, delivered %d (the probe only)", rc.Accepted, rc.Missing, rc.Delivered)
	}
	if rep.OK || len(rep.Failed) != 1 || !strings.Contains(rep.Failed[0], "30 messages accepted before the kill") {
		t.Errorf("ok %v, failed %q", rep.OK, rep.Failed)
	}
}

func TestFailuresScenarioWithFakeMtad(t *testing.T) {
	rep := runFakeScenario(t, "-scenario", "failures", "-n", "200", "-c", "4", "-size", "600",
		"-temp-fail", "0.2", "-perm-fail", "0.1") // two pairs, the default: the fake takes a fraction of a second
	f := rep.Failures
	if f == nil || f.Pairs != 2 || len(f.Clean) != 2 || len(f.Failing) != 2 || len(f.PairRatios) != 2 || f.Ratio == nil {
		t.Fatalf("failures: %+v", f)
	}
	if math.Abs(f.Threshold-0.7) > 1e-9 {
		t.Errorf("threshold %v", f.Threshold)
	}
	for i, run := range []int{1, 4} {
		if c := f.Clean[i]; c.Run != run || c.Label != "clean pass "+strconv.Itoa(i+1) || !c.Window.Complete || c.Window.Delivered != 200 || c.Phase.TempFails != 0 {
			t.Errorf("clean pass %d: run %d, label %q, window %+v, 451s %d", i+1, c.Run, c.Label, c.Window, c.Phase.TempFails)
		}
	}
	for i, run := range []int{2, 3} {
		p := f.Failing[i]
		if p.Run != run || p.Label != "failing pass "+strconv.Itoa(i+1) || p.Deferred == 0 || p.DeferredDelivered != p.Deferred || p.Phase.PermFails == 0 {
			t.Errorf("failing pass %d: run %d, label %q, deferred %d, delivered on retry %d, 550s %d",
				i+1, p.Run, p.Label, p.Deferred, p.DeferredDelivered, p.Phase.PermFails)
		}
	}
	if len(rep.Problems) != 0 {
		t.Errorf("problems: %v", rep.Problems) // the ratio may fail on a loaded machine; correctness may not
	}
	var buf bytes.Buffer
	if err := rep.writeText(&buf); err != nil || !regexp.MustCompile(`failing / clean delivered/s +[0-9.]+ pooled over 2 pairs \(pair ratios [0-9.]+, [0-9.]+;`).MatchString(buf.String()) {
		t.Errorf("text report: %v\n%s", err, buf.String())
	}
}

// Only the first failing pass is profiled: one note for each profile, and
// none saying a pass ended before its profile.
func TestFailuresProfilesFirstFailingPass(t *testing.T) {
	dir := t.TempDir()
	cpu, mem := filepath.Join(dir, "cpu.pprof"), filepath.Join(dir, "mem.pprof")
	rep := runFakeScenario(t, "-scenario", "failures", "-n", "50", "-c", "2", "-size", "600", "-pairs", "2",
		"-cpuprofile", cpu, "-memprofile", mem, "-profile-seconds", "1")
	if len(rep.Problems) != 0 || len(rep.Profiles) != 2 || !strings.Contains(rep.Profiles[0], mem) || !strings.Contains(rep.Profiles[1], cpu) {
		t.Errorf("problems %q, profiles %q", rep.Problems, rep.Profiles)
	}
	for _, f := range []string{cpu, mem} {
		if fi, err := os.Stat(f); err != nil || fi.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
}

func TestLargeScenarioWithFakeMtad(t *testing.T) {
	rep := runFakeScenario(t, "-scenario", "large", "-n", "3", "-c", "2", "-large-sizes", "100000,300000", "-json")
	if !rep.OK || len(rep.Large) != 2 {
		t.Fatalf("ok %v, problems %v, sizes %d", rep.OK, rep.Problems, len(rep.Large))
	}
	for i, size := range []int{100000, 300000} {
		ls := rep.Large[i]
		if ls.Size != size || ls.Phase.Delivered != 3 || ls.Phase.SizeMismatches != 0 || ls.PeakRSSKiB == nil || ls.RSSOverSize == nil {
			t.Errorf("size %d: %+v", size, ls)
		}
		if !strings.Contains(rep.MtadConfigs["large-"+strconv.Itoa(size)], "max-message-size = '"+sizeKB(int64(size)+largeSizeHeadroom)+"'") {
			t.Errorf("config of %d: %q", size, rep.MtadConfigs["large-"+strconv.Itoa(size)])
		}
	}
	var buf bytes.Buffer
	if err := rep.writeJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var back report
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil || len(back.Large) != 2 || back.Scenario != "large" {
		t.Errorf("JSON round trip: %v, %+v", err, back.Large)
	}
}
