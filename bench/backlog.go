package main

import (
	"context"
	"fmt"
	"time"
)

// Bounds on waiting for mtad's queue gauge to count every accepted message.
const (
	queueSettleBound = 2 * time.Minute
	queueSettlePoll  = 500 * time.Millisecond
)

// backlogStats is what -scenario backlog measured.
type backlogStats struct {
	Accepted         int64         `json:"accepted"`
	InjectSeconds    float64       `json:"inject_seconds"`
	InjectRate       float64       `json:"injected_per_second"`
	QueueAtRelease   *float64      `json:"queue_at_release"` // mtad_queue_messages; null when mtad does not expose it
	QueueWaitSeconds float64       `json:"queue_wait_seconds"`
	DrainSeconds     float64       `json:"drain_seconds"` // release to the last delivery
	DrainRate        float64       `json:"drained_per_second"`
	Delivered        int64         `json:"delivered"`
	Missing          int64         `json:"missing"`
	Duplicates       int64         `json:"duplicates"`
	RSS              *rssStats     `json:"rss"`
	Journal          *journalStats `json:"journal"`
}

// queueingConf is mtad's configuration for the scenarios that hold mail
// back: deferred mail is retried every backlogRetry and never expires.
func queueingConf() mtadConf {
	return mtadConf{retry: []string{backlogRetry}, expire: longExpiry}
}

// runBacklog injects every message while the sink defers them all, then
// releases the sink and waits for the queue to drain, sampling mtad's RSS
// throughout.
func runBacklog(ctx context.Context, r *rig) error {
	q, err := r.queueing(ctx, scenarioBacklog, r.cfg.n)
	if err != nil {
		return err
	}
	defer q.close()
	l, s := q.ledger, q.sink
	d, err := r.startMtad(ctx, q.conf, q.dataDir, s.addr(), "mtad.log", true)
	if err != nil {
		return err
	}
	defer d.stop() // a no-op once endMtad has stopped it
	bs := &backlogStats{}
	r.rep.Backlog = bs
	release, rss := r.backlogPhases(ctx, l, s, d, bs)
	end := r.endMtad(ctx, d, rss)
	st := collect(l)
	r.rep.Main = &st
	bs.fill(l, &st, release, end)
	r.judgeRSS(bs.RSS)
	return nil
}

// queueingRun is what the backlog and recovery scenarios start from: a
// ledger for n messages, a sink that defers every recipient, mtad's
// configuration for the scenario and a data directory.
type queueingRun struct {
	ledger        *ledger
	sink          *sink
	conf, dataDir string
	cleanup       []func()
}

func (q *queueingRun) close() {
	for i := len(q.cleanup) - 1; i >= 0; i-- {
		q.cleanup[i]()
	}
}

// queueing prepares a queueingRun; on error, what it made is undone.
func (r *rig) queueing(ctx context.Context, scenario string, n int) (q *queueingRun, err error) {
	q = &queueingRun{}
	defer func() {
		if err != nil {
			q.close()
		}
	}()
	cfg := r.cfg
	p, err := newPlan(n, cfg.size, cfg.rcpts, cfg.domains, 0, 0)
	if err != nil {
		return nil, err
	}
	q.ledger = newLedger(p)
	if q.sink, err = startSink(cfg.sinkListen, q.ledger); err != nil {
		return nil, err
	}
	q.cleanup = append(q.cleanup, func() { q.sink.close() })
	q.sink.setDefer(true)
	if q.conf, err = r.writeConf(ctx, scenario, queueingConf()); err != nil {
		return nil, err
	}
	dataDir, removeData, err := r.dataDir(true)
	if err != nil {
		return nil, err
	}
	q.dataDir, q.cleanup = dataDir, append(q.cleanup, removeData)
	return q, nil
}

// backlogPhases injects, waits for the queue, releases the sink and waits
// for the drain; it returns the release's clock offset and the running
// RSS sampler.
func (r *rig) backlogPhases(ctx context.Context, l *ledger, s *sink, d *daemon, bs *backlogStats) (int64, *rssSampler) {
	rss := startRSS(d, l.clock, "injecting")
	stop := startProgress(l, "backlog", r.env.progress, r.env.tty)
	defer stop()
	inject(ctx, l, d.listen, r.cfg.conc)
	rss.setStage("waiting for the queue")
	bs.QueueAtRelease, bs.QueueWaitSeconds = r.waitQueue(ctx, d, l.accepted.Load())
	return r.releaseAndDrain(ctx, l, s, d, rss), rss
}

// releaseAndDrain takes the heap profile at the queue's peak, lets the
// sink accept, and waits for the drain; it returns the release's clock
// offset.
func (r *rig) releaseAndDrain(ctx context.Context, l *ledger, s *sink, d *daemon, rss *rssSampler) int64 {
	r.prof.writeHeap(ctx)
	release := l.clock.now()
	s.setDefer(false)
	rss.setStage("draining")
	waitDrain(ctx, l, d.exited, r.prof)
	return release
}

// waitDrain is waitDelivered for a released sink: the CPU profile starts
// with the first delivery after the release (mtad may sit out a retry
// interval before it).
func waitDrain(ctx context.Context, l *ledger, abort <-chan struct{}, prof *profiler) {
	base := l.deliveries.Load()
	t := time.NewTicker(deliveryPoll)
	defer t.Stop()
	for !l.complete() {
		if l.deliveries.Load() > base {
			prof.startCPU(ctx) // once
		}
		select {
		case <-ctx.Done():
			return
		case <-abort:
			return
		case <-t.C:
		}
	}
}

// waitQueue polls mtad_queue_messages until it counts want messages,
// within queueSettleBound. It returns the last value (nil when mtad does
// not expose it: then it does not wait) and the time waited.
func (r *rig) waitQueue(ctx context.Context, d *daemon, want int64) (*float64, float64) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, queueSettleBound)
	defer cancel()
	t := time.NewTicker(queueSettlePoll)
	defer t.Stop()
	for {
		m, err := scrapeMetrics(ctx, r.mgmt)
		v, ok := m.sum(metricQueueMsgs)
		if err != nil || !ok {
			r.rep.Warnings = append(r.rep.Warnings, "released without checking mtad's queue: no "+metricQueueMsgs+" on /metrics")
			return nil, time.Since(start).Seconds()
		}
		if int64(v) >= want {
			return &v, time.Since(start).Seconds()
		}
		select {
		case <-t.C:
			continue
		case <-ctx.Done():
		case <-d.exited:
		}
		r.rep.Warnings = append(r.rep.Warnings, fmt.Sprintf("released with %s at %.0f of %d accepted messages", metricQueueMsgs, v, want))
		return &v, time.Since(start).Seconds()
	}
}

// fill completes the stats once mtad has stopped.
func (bs *backlogStats) fill(l *ledger, st *phaseStats, release int64, end mtadEnd) {
	bs.Accepted, bs.InjectSeconds, bs.InjectRate = st.Accepted, st.InjectSeconds, st.AcceptRate
	if last := l.lastDelivery(); last > release {
		bs.DrainSeconds = seconds(last - release)
	}
	bs.Delivered, bs.Missing, bs.Duplicates = st.Delivered, st.Missing, st.Duplicates
	bs.DrainRate = rate(st.Delivered, bs.DrainSeconds)
	bs.RSS = summariseRSS(end.rss, end.hwm)
	bs.Journal = end.journal
}

// rows prints the backlog section of the report.
func (bs *backlogStats) rows(row func(k, f string, a ...any)) {
	row("backlog injected/s", "%.1f (%d accepted in %.1f s while the sink deferred every recipient)", bs.InjectRate, bs.Accepted, bs.InjectSeconds)
	row("queue at release", "%s (%s, after %.1f s)", optText(bs.QueueAtRelease, "%.0f messages"), metricQueueMsgs, bs.QueueWaitSeconds)
	row("time to drain", "%.1f s from release to the last delivery (%.1f deliveries/s; mtad retries every %s)", bs.DrainSeconds, bs.DrainRate, backlogRetry)
	row("drain delivered", "%d (missing %d, duplicates %d)", bs.Delivered, bs.Missing, bs.Duplicates)
	bs.RSS.rows(row, "mtad")
	row("RSS bound", "1 GiB (peak above it fails the scenario)")
	bs.Journal.rows(row)
}
