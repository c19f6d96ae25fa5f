package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Scenario names, for -scenario.
const (
	scenarioThroughput = "throughput"
	scenarioBacklog    = "backlog"
	scenarioRecovery   = "recovery"
	scenarioFailures   = "failures"
	scenarioLarge      = "large"
)

var scenarioNames = []string{scenarioThroughput, scenarioBacklog, scenarioRecovery, scenarioFailures, scenarioLarge}

// scenarioDefaults are the flag values a scenario uses unless the command
// line gives them.
var scenarioDefaults = map[string][][2]string{
	scenarioBacklog:  {{"n", "1000000"}, {"size", "1024"}, {"c", "20"}, {"timeout", "1h"}},
	scenarioRecovery: {{"n", "1000000"}, {"size", "1024"}, {"c", "20"}, {"timeout", "1h"}},
	scenarioFailures: {{"n", "50000"}, {"temp-fail", "0.10"}, {"perm-fail", "0.02"}, {"pairs", "2"}},
	scenarioLarge:    {{"n", "20"}, {"c", "4"}, {"timeout", "30m"}},
}

// Promises and settings of the scenarios.
const (
	rssLimitKiB       = 1 << 20 // 1 GiB: backlog's bound on mtad's peak RSS
	restartLimit      = 10 * time.Second
	backlogRetry      = "30s" // deferred mail comes back soon after the release
	failuresRetry     = "2s"
	longExpiry        = "30d" // nothing expires during a run
	largeSizeHeadroom = 1 << 20
	maxLargeSize      = 1 << 30
)

// applyScenarioDefaults sets the scenario's defaults on the flags of fs
// that the command line did not give.
func (c *config) applyScenarioDefaults(fs *flag.FlagSet) {
	for _, d := range scenarioDefaults[c.scenario] {
		if !c.set[d[0]] {
			_ = fs.Set(d[0], d[1]) // the table holds valid values
		}
	}
}

// checkScenario validates the flags of a scenario other than throughput.
func (c *config) checkScenario() error {
	if !slices.Contains(scenarioNames, c.scenario) {
		return fmt.Errorf("-scenario %q: want one of %s", c.scenario, strings.Join(scenarioNames, ", "))
	}
	switch {
	case c.mtadConfig != "":
		return fmt.Errorf("-config: -scenario %s writes its own mtad config (management listener, retry schedule, message size); drop -config", c.scenario)
	case c.target != "":
		return fmt.Errorf("-target: -scenario %s starts, kills and restarts mtad itself; drop -target", c.scenario)
	case c.directOnly:
		return fmt.Errorf("-direct-only applies to -scenario throughput only")
	case c.set["large-sizes"] && c.scenario != scenarioLarge:
		return errors.New("-large-sizes applies to -scenario large only")
	case c.set["pairs"] && c.scenario != scenarioFailures:
		return errors.New("-pairs applies to -scenario throughput and failures only")
	}
	switch c.scenario {
	case scenarioFailures:
		return c.checkFailures()
	case scenarioLarge:
		return c.checkLarge()
	}
	if c.tempFail != 0 || c.permFail != 0 {
		return fmt.Errorf("-temp-fail and -perm-fail: -scenario %s measures a clean queue; drop them", c.scenario)
	}
	return nil
}

func (c *config) checkFailures() error {
	switch {
	case c.tempFail+c.permFail == 0:
		return errors.New("-scenario failures needs -temp-fail or -perm-fail above 0 (defaults 0.10 and 0.02)")
	case c.dataDir != "":
		return errors.New("-data-dir: -scenario failures gives each pass a fresh temporary data directory; drop -data-dir")
	case c.pairs < 1:
		return fmt.Errorf("-pairs %d: -scenario failures needs at least 1 pair of passes", c.pairs)
	}
	return nil
}

func (c *config) checkLarge() error {
	switch {
	case c.set["size"]:
		return errors.New("-size: -scenario large takes its sizes from -large-sizes")
	case c.tempFail != 0 || c.permFail != 0:
		return errors.New("-temp-fail and -perm-fail: -scenario large measures a clean queue; drop them")
	case c.dataDir != "":
		return errors.New("-data-dir: -scenario large gives each size a fresh temporary data directory; drop -data-dir")
	case len(c.largeSizes) == 0:
		return errors.New("-large-sizes: give at least one size")
	}
	for _, s := range c.largeSizes {
		if s < minSize || s > maxLargeSize {
			return fmt.Errorf("-large-sizes: %d is outside %d..%d", s, minSize, maxLargeSize)
		}
	}
	return nil
}

// checkProfiles validates -cpuprofile, -memprofile and -profile-seconds.
func (c *config) checkProfiles() error {
	switch {
	case c.profileSeconds < 1:
		return errors.New("-profile-seconds must be at least 1")
	case c.cpuProfile == "" && c.memProfile == "":
		return nil
	case c.directOnly || c.target != "":
		return errors.New("-cpuprofile and -memprofile need an mtad started by the harness: drop -direct-only and -target")
	case c.cpuProfile == c.memProfile:
		return errors.New("-cpuprofile and -memprofile must name different files")
	}
	return nil
}

// sizeList is a comma-separated list of byte counts, as a flag.
type sizeList []int

func (s *sizeList) String() string {
	parts := make([]string, len(*s))
	for i, n := range *s {
		parts[i] = strconv.Itoa(n)
	}
	return strings.Join(parts, ",")
}

func (s *sizeList) Set(v string) error {
	var out sizeList
	for _, f := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return fmt.Errorf("bad size %q (want bytes, e.g. 10485760)", f)
		}
		out = append(out, n)
	}
	*s = out
	return nil
}

// rig is what every scenario shares: the mtad binary, a work directory,
// the management and profiler addresses and the report. Its methods run
// on the scenario's goroutine.
type rig struct {
	cfg     config
	env     runEnv
	rep     *report
	bin     string
	workDir string
	mgmt    string    // [server.management] bind of every generated config
	prof    *profiler // nil without -cpuprofile and -memprofile
}

// runScenario runs cfg.scenario (not throughput) and fills rep.
func runScenario(ctx context.Context, cfg config, env runEnv, rep *report) error {
	workDir, err := os.MkdirTemp("", "mtad-bench-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(workDir)
	r := &rig{cfg: cfg, env: env, rep: rep, workDir: workDir}
	if r.bin, err = mtadBinary(ctx, cfg, workDir); err != nil {
		return err
	}
	if r.mgmt, err = freeLoopbackAddr(); err != nil {
		return err
	}
	if r.prof, err = newProfiler(cfg); err != nil {
		return err
	}
	switch cfg.scenario {
	case scenarioBacklog:
		return runBacklog(ctx, r)
	case scenarioRecovery:
		return runRecovery(ctx, r)
	case scenarioFailures:
		return runFailures(ctx, r)
	case scenarioLarge:
		return runLarge(ctx, r)
	}
	return fmt.Errorf("unknown scenario %q", cfg.scenario)
}

// writeConf writes and checks the mtad configuration called name.
func (r *rig) writeConf(ctx context.Context, name string, c mtadConf) (string, error) {
	c.management = r.mgmt
	path, text, err := writeMtadConf(ctx, r.bin, r.workDir, name, c)
	if err != nil {
		return "", err
	}
	if r.rep.MtadConfigs == nil {
		r.rep.MtadConfigs = map[string]string{}
	}
	r.rep.MtadConfigs[name] = text
	return path, nil
}

// dataDir is -data-dir (fresh) when given and allowed, else a new
// temporary directory; remove deletes what the harness made.
func (r *rig) dataDir(useFlag bool) (dir string, remove func(), err error) {
	flagDir := ""
	if useFlag {
		flagDir = r.cfg.dataDir
	}
	dir, owned, err := prepareDataDir(flagDir)
	if err != nil {
		return "", nil, err
	}
	return dir, func() {
		if owned {
			os.RemoveAll(dir)
		}
	}, nil
}

// spawnMtad starts mtad with the config at conf, without waiting for it.
// profiled gives it the profiler's --pprof listener.
func (r *rig) spawnMtad(conf, dataDir, relay, logName string, profiled bool) (*daemon, error) {
	spec := daemonSpec{bin: r.bin, dataDir: dataDir, config: conf, relay: relay,
		logPath: filepath.Join(r.workDir, logName)}
	if profiled {
		spec.pprof = r.prof.pprofAddr()
	}
	return startDaemon(spec)
}

// startMtad is spawnMtad, then waits until mtad listens. On an error, mtad
// is stopped and the error quotes its log.
func (r *rig) startMtad(ctx context.Context, conf, dataDir, relay, logName string, profiled bool) (*daemon, error) {
	d, err := r.spawnMtad(conf, dataDir, relay, logName, profiled)
	if err != nil {
		return nil, err
	}
	if err := d.waitReady(ctx); err != nil {
		d.stop()
		return nil, fmt.Errorf("%w\nmtad log (end):\n%s", err, d.logTail())
	}
	return d, nil
}

// mtadEnd is what the harness reads from an mtad as it stops it.
type mtadEnd struct {
	journal *journalStats
	hwm     *int64 // VmHWM in KiB; nil when unreadable
	rss     []rssSample
	exit    string
}

// endMtad finishes the profiles (when d is the profiled mtad), scrapes
// the journal metrics, reads the peak RSS and stops d with SIGTERM. rss may be nil. It runs even when
// ctx has ended, within its own bounds.
func (r *rig) endMtad(ctx context.Context, d *daemon, rss *rssSampler) mtadEnd {
	ctx = context.WithoutCancel(ctx)
	if d.profiled {
		r.rep.Profiles = append(r.rep.Profiles, r.prof.finish()...)
	}
	var e mtadEnd
	e.journal = scrapeJournal(ctx, r.mgmt)
	if kib, err := d.peakRSS(); err == nil {
		e.hwm = &kib
	} else {
		r.rep.Warnings = append(r.rep.Warnings, "mtad peak RSS: "+err.Error())
	}
	if rss != nil {
		e.rss = rss.stop()
	}
	e.exit = d.stop()
	r.rep.MtadExit = e.exit
	if !d.cleanExit() {
		r.rep.Warnings = append(r.rep.Warnings, "mtad did not exit cleanly on SIGTERM: "+e.exit)
		if r.env.log != nil {
			fmt.Fprintf(r.env.log, "bench: end of mtad's log:\n%s\n", d.logTail())
		}
	}
	return e
}

// fail records a broken promise.
func (r *rig) fail(format string, a ...any) {
	r.rep.Failed = append(r.rep.Failed, "FAIL: "+fmt.Sprintf(format, a...))
}

// judgeRSS fails the run when peak is above the backlog bound.
func (r *rig) judgeRSS(s *rssStats) {
	if s != nil && s.PeakKiB > rssLimitKiB {
		r.fail("peak RSS %s > 1 GiB", mib(s.PeakKiB))
	}
}

// writeScenario prints the section of the scenario that ran.
func (r *report) writeScenario(row func(k, f string, a ...any)) {
	switch {
	case r.Backlog != nil:
		r.Backlog.rows(row)
	case r.Recovery != nil:
		r.Recovery.rows(row)
	case r.Failures != nil:
		r.Failures.rows(row)
	}
	for _, ls := range r.Large {
		ls.rows(row)
	}
}

// passRun is one measured pass of a scenario: its messages (-n of size
// bytes, with the sink failing the temp and perm shares), the mtad
// configuration and log it runs with, the label of its progress and the
// prefix of its problems, and whether mtad is profiled.
type passRun struct {
	size          int
	temp, perm    float64
	conf, logName string
	label, judged string
	profiled      bool
}

// measuredPass runs one pass against a fresh mtad on a fresh data
// directory, with its own sink and ledger: it injects, waits for the
// deliveries, stops mtad and judges the phase. The ledger is returned for
// the scenario's own measures.
func (r *rig) measuredPass(ctx context.Context, pr passRun) (*ledger, *phaseStats, mtadEnd, error) {
	cfg := r.cfg
	p, err := newPlan(cfg.n, pr.size, cfg.rcpts, cfg.domains, pr.temp, pr.perm)
	if err != nil {
		return nil, nil, mtadEnd{}, err
	}
	l := newLedger(p)
	s, err := startSink(cfg.sinkListen, l)
	if err != nil {
		return nil, nil, mtadEnd{}, err
	}
	defer s.close()
	dataDir, removeData, err := r.dataDir(false)
	if err != nil {
		return nil, nil, mtadEnd{}, err
	}
	defer removeData()
	d, err := r.startMtad(ctx, pr.conf, dataDir, s.addr(), pr.logName, pr.profiled)
	if err != nil {
		return nil, nil, mtadEnd{}, err
	}
	defer d.stop() // a no-op once endMtad has stopped it
	var prof *profiler
	if pr.profiled {
		prof = r.prof
	}
	runPhase(ctx, l, d.listen, cfg.conc, r.env, pr.label, d, prof)
	end := r.endMtad(ctx, d, nil)
	st := collect(l)
	r.rep.judge(pr.judged, &st)
	return l, &st, end, nil
}
