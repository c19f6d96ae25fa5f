package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// deliveryPoll is how often the harness checks for the last delivery.
const deliveryPoll = 20 * time.Millisecond

// runEnv is where a run writes besides the report.
type runEnv struct {
	progress io.Writer // progress display; nil shows none
	tty      bool      // progress is a terminal: draw a bar
	log      io.Writer // notes, and mtad's log tail when something failed
}

// run executes the phases cfg asks for and fills rep with what they
// measured. Its error is a phase that could not run at all.
func run(ctx context.Context, cfg config, env runEnv, rep *report) error {
	rep.Scenario = cfg.scenario
	if cfg.scenario != scenarioThroughput {
		return runScenario(ctx, cfg, env, rep)
	}
	var bin, workDir string
	if !cfg.directOnly && cfg.target == "" {
		var err error
		if workDir, err = os.MkdirTemp("", "mtad-bench-*"); err != nil {
			return err
		}
		defer os.RemoveAll(workDir)
		if bin, err = mtadBinary(ctx, cfg, workDir); err != nil {
			return err
		}
	}
	if cfg.pairs > 1 {
		return runPairs(ctx, cfg, env, rep, bin, workDir)
	}
	if !cfg.skipDirect {
		st, err := directPhase(ctx, cfg, env)
		if err != nil {
			return fmt.Errorf("direct baseline: %w", err)
		}
		rep.Direct = st
	}
	if cfg.directOnly {
		rep.Main = rep.Direct
		return nil
	}
	return mtadPhase(ctx, cfg, env, rep, bin, workDir)
}

// runPairs runs cfg.pairs direct phases and as many mtad phases, in ABBA
// order, into rep.Pairs; rep.Direct and rep.Main are the first of each, and
// only the first mtad phase is profiled.
func runPairs(ctx context.Context, cfg config, env runEnv, rep *report, bin, workDir string) error {
	tp := &throughputPairs{}
	rep.Pairs = tp
	for i, isMtad := range abbaOrder(cfg.pairs) {
		if !isMtad {
			st, err := directPhase(ctx, cfg, env)
			if err != nil {
				return fmt.Errorf("direct baseline %d: %w", len(tp.Direct)+1, err)
			}
			tp.Direct = append(tp.Direct, st)
			continue
		}
		one := &report{}
		c := cfg
		if len(tp.Mtad) > 0 {
			c.cpuProfile, c.memProfile = "", ""
		}
		dir := filepath.Join(workDir, fmt.Sprintf("phase-%d", i+1))
		if err := os.Mkdir(dir, 0o700); err != nil {
			return err
		}
		if err := mtadPhase(ctx, c, env, one, bin, dir); err != nil {
			return fmt.Errorf("mtad phase %d: %w", len(tp.Mtad)+1, err)
		}
		tp.add(rep, one)
	}
	rep.Direct, rep.Main = tp.Direct[0], tp.Mtad[0]
	return nil
}

// mtadBinary is -mtad, or ./cmd/mtad built into dir.
func mtadBinary(ctx context.Context, cfg config, dir string) (string, error) {
	if cfg.mtadPath != "" {
		return filepath.Abs(cfg.mtadPath)
	}
	return buildMtad(ctx, dir)
}

// directPhase measures the baseline: the same messages straight into a
// sink of their own, with no failures.
func directPhase(ctx context.Context, cfg config, env runEnv) (*phaseStats, error) {
	p, err := newPlan(cfg.n, cfg.size, cfg.rcpts, cfg.domains, 0, 0)
	if err != nil {
		return nil, err
	}
	l := newLedger(p)
	s, err := startSink("127.0.0.1:0", l)
	if err != nil {
		return nil, err
	}
	defer s.close()
	runPhase(ctx, l, s.addr(), cfg.conc, env, "direct", nil, nil)
	st := collect(l)
	return &st, nil
}

// mtadPhase drives mtad: the one at -target, or one started here from bin
// with its files in workDir.
func mtadPhase(ctx context.Context, cfg config, env runEnv, rep *report, bin, workDir string) error {
	p, err := newPlan(cfg.n, cfg.size, cfg.rcpts, cfg.domains, cfg.tempFail, cfg.permFail)
	if err != nil {
		return err
	}
	l := newLedger(p)
	s, err := startSink(cfg.sinkListen, l)
	if err != nil {
		return err
	}
	defer s.close()
	if cfg.target != "" {
		runPhase(ctx, l, cfg.target, cfg.conc, env, "mtad", nil, nil)
		st := collect(l)
		rep.Main = &st
		return nil
	}
	prof, err := newProfiler(cfg)
	if err != nil {
		return err
	}
	d, cleanup, err := launchMtad(ctx, cfg, bin, workDir, s.addr(), prof.pprofAddr())
	if err != nil {
		return err
	}
	defer cleanup()
	runPhase(ctx, l, d.listen, cfg.conc, env, "mtad", d, prof)
	st := collect(l)
	rep.Main = &st
	rep.Profiles = prof.finish()
	finishMtad(d, rep, env)
	return nil
}

// runPhase injects the plan of l into target, then waits for the sink to
// see every expected delivery, for ctx to end or for mtad d (nil: none
// started here) to exit. It records the CPU the harness and d spent. With
// a profiler, the CPU profile starts with the injection (mtad delivers
// while it accepts) and the heap profile is taken when the injection ends,
// at the peak of the queue; the caller calls prof.finish.
func runPhase(ctx context.Context, l *ledger, target string, conc int, env runEnv, label string, d *daemon, prof *profiler) {
	stop := startProgress(l, label, env.progress, env.tty)
	defer stop()
	var abort <-chan struct{}
	if d != nil {
		abort = d.exited
	}
	prof.startCPU(ctx)
	cpu := startCPU(d)
	inject(ctx, l, target, conc)
	prof.writeHeap(ctx)
	waitDelivered(ctx, l, abort)
	cpu.stop(l)
}

// waitDelivered polls until l is complete; it reports whether it is.
func waitDelivered(ctx context.Context, l *ledger, abort <-chan struct{}) bool {
	t := time.NewTicker(deliveryPoll)
	defer t.Stop()
	for !l.complete() {
		select {
		case <-ctx.Done():
			return false
		case <-abort:
			return l.complete()
		case <-t.C:
		}
	}
	return true
}

// launchMtad starts mtad on a fresh data directory, relaying to relay (and
// serving the profiler on pprofAddr unless empty), and waits until it
// listens. cleanup stops it if it still runs and removes the
// data directory when the harness made it.
func launchMtad(ctx context.Context, cfg config, bin, workDir, relay, pprofAddr string) (*daemon, func(), error) {
	dataDir, owned, err := prepareDataDir(cfg.dataDir)
	if err != nil {
		return nil, nil, err
	}
	removeData := func() {
		if owned {
			os.RemoveAll(dataDir)
		}
	}
	spec := daemonSpec{bin: bin, dataDir: dataDir, config: cfg.mtadConfig, relay: relay,
		pprof: pprofAddr, logPath: filepath.Join(workDir, "mtad.log")}
	d, err := startDaemon(spec)
	if err != nil {
		removeData()
		return nil, nil, err
	}
	cleanup := func() {
		d.stop()
		removeData()
	}
	if err := d.waitReady(ctx); err != nil {
		cleanup()
		return nil, nil, fmt.Errorf("%w\nmtad log (end):\n%s", err, d.logTail())
	}
	return d, cleanup, nil
}

// prepareDataDir returns -data-dir, made if missing and required to be
// empty, or a new temporary directory that the caller owns and removes.
func prepareDataDir(dir string) (string, bool, error) {
	if dir == "" {
		dir, err := os.MkdirTemp("", "mtad-bench-data-*")
		return dir, err == nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", false, fmt.Errorf("-data-dir: %w", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", false, fmt.Errorf("-data-dir: %w", err)
	}
	if len(entries) > 0 {
		return "", false, fmt.Errorf("-data-dir %s is not empty: a run needs a fresh journal", dir)
	}
	return dir, false, nil
}

// finishMtad reads mtad's peak RSS, stops it and records how it ended. When
// the run failed, the end of mtad's log goes to env.log.
func finishMtad(d *daemon, rep *report, env runEnv) {
	if kib, err := d.peakRSS(); err == nil {
		rep.PeakRSSKiB = &kib
	} else {
		rep.Warnings = append(rep.Warnings, "mtad peak RSS: "+err.Error())
	}
	rep.MtadExit = d.stop()
	if !d.cleanExit() {
		rep.Warnings = append(rep.Warnings, "mtad did not exit cleanly on SIGTERM: "+rep.MtadExit)
	}
	if (!rep.Main.ok() || !d.cleanExit()) && env.log != nil {
		fmt.Fprintf(env.log, "bench: end of mtad's log:\n%s\n", d.logTail())
	}
}
