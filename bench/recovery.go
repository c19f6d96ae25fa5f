package main

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/emersion/go-smtp"
)

// Bounds of the probe that times mtad's restart.
const (
	probeInterval       = 100 * time.Millisecond
	probeBound          = time.Minute // beyond restartLimit, so a slow restart is still measured
	probeDialTimeout    = time.Second
	probeCommandTimeout = 10 * time.Second
)

// recoveryStats is what -scenario recovery measured.
type recoveryStats struct {
	Accepted            int64         `json:"accepted_before_kill"`
	InjectSeconds       float64       `json:"inject_seconds"`
	InjectRate          float64       `json:"injected_per_second"`
	DeliveredBeforeKill int64         `json:"delivered_before_kill"`        // sink deliveries before the kill: the duplicates allowed
	RestartTo250        *float64      `json:"restart_to_first_250_seconds"` // null: no 250 within probeBound
	ProbeAttempts       int           `json:"probe_attempts"`
	ProbeError          string        `json:"probe_error,omitempty"`
	DrainSeconds        float64       `json:"drain_seconds"` // release to the last delivery
	Delivered           int64         `json:"delivered"`
	Missing             int64         `json:"missing"`
	Duplicates          int64         `json:"duplicates"`
	RSSBeforeKill       *rssStats     `json:"rss_before_kill"`
	RSSAfterRestart     *rssStats     `json:"rss_after_restart"`
	Journal             *journalStats `json:"journal"`
}

// runRecovery queues every message behind a deferring sink, kills mtad
// with SIGKILL, restarts it on the same data directory, times its first
// 250 and then checks that everything accepted before the kill arrives.
// Message id cfg.n is the probe.
func runRecovery(ctx context.Context, r *rig) error {
	q, err := r.queueing(ctx, scenarioRecovery, r.cfg.n+1)
	if err != nil {
		return err
	}
	defer q.close()
	l, s, conf, dataDir := q.ledger, q.sink, q.conf, q.dataDir
	rs := &recoveryStats{}
	r.rep.Recovery = rs
	stop := startProgress(l, "recovery", r.env.progress, r.env.tty)
	d, err := r.injectAndKill(ctx, l, conf, dataDir, s.addr(), rs)
	if err != nil {
		stop()
		return err
	}
	defer d.stop() // a no-op once endMtad has stopped it
	release, rss := r.probeAndDrain(ctx, l, s, d, rs)
	stop()
	end := r.endMtad(ctx, d, rss)
	st := collect(l)
	r.rep.Main = &st
	rs.fill(l, &st, release, end)
	r.judgeRecovery(rs)
	return nil
}

// injectAndKill runs the first mtad, injects cfg.n messages into it,
// SIGKILLs it and starts the second on the same data directory; it
// returns the second, not yet listening.
func (r *rig) injectAndKill(ctx context.Context, l *ledger, conf, dataDir, relay string, rs *recoveryStats) (*daemon, error) {
	d, err := r.startMtad(ctx, conf, dataDir, relay, "mtad.log", false)
	if err != nil {
		return nil, err
	}
	rss := startRSS(d, l.clock, "injecting")
	injectN(ctx, l, d.listen, r.cfg.conc, r.cfg.n)
	rs.Accepted, rs.DeliveredBeforeKill = l.accepted.Load(), l.deliveries.Load()
	rs.InjectSeconds = seconds(l.injectEnd.Load() - l.injectStart.Load())
	rs.InjectRate = rate(rs.Accepted, rs.InjectSeconds)
	var hwm *int64
	if kib, err := d.peakRSS(); err == nil {
		hwm = &kib
	}
	samples := rss.stop()
	d.kill()
	rs.RSSBeforeKill = summariseRSS(samples, hwm)
	return r.spawnMtad(conf, dataDir, relay, "mtad-restart.log", true)
}

// probeAndDrain times the restarted mtad's first 250, releases the sink
// and waits for every delivery. It returns the release's clock offset and
// the running RSS sampler of d.
func (r *rig) probeAndDrain(ctx context.Context, l *ledger, s *sink, d *daemon, rs *recoveryStats) (int64, *rssSampler) {
	rss := startRSS(d, l.clock, "restarting")
	took, attempts, err := probe(ctx, l, d, r.cfg.n)
	rs.ProbeAttempts = attempts
	if err != nil {
		rs.ProbeError = err.Error()
	} else {
		secs := took.Seconds()
		rs.RestartTo250 = &secs
	}
	return r.releaseAndDrain(ctx, l, s, d, rss), rss
}

// probe sends message id to d every probeInterval until one is accepted,
// and returns the time from d's exec to that 250 and the attempts made.
// It gives up after probeBound or when d exits.
func probe(ctx context.Context, l *ledger, d *daemon, id int) (time.Duration, int, error) {
	ctx, cancel := context.WithTimeout(ctx, probeBound)
	defer cancel()
	gen := newGenerator(l.plan)
	t := time.NewTicker(probeInterval)
	defer t.Stop()
	for attempt := 1; ; attempt++ {
		at, err := probeOnce(ctx, l, gen, d.listen, id)
		if err == nil {
			return at.Sub(d.startedAt), attempt, nil
		}
		select {
		case <-t.C:
			continue
		case <-ctx.Done():
			return 0, attempt, fmt.Errorf("no 250 within %s of the restart; last attempt: %w", probeBound, err)
		case <-d.exited:
			return 0, attempt, fmt.Errorf("mtad exited after the restart (%v); last attempt: %w", d.waitErr, err)
		}
	}
}

// probeOnce runs one whole session submitting message id; on a 250 it
// records the message in l and returns when the 250 came.
func probeOnce(ctx context.Context, l *ledger, gen *generator, addr string, id int) (time.Time, error) {
	dl := net.Dialer{Timeout: probeDialTimeout}
	conn, err := dl.DialContext(ctx, "tcp", addr)
	if err != nil {
		return time.Time{}, err
	}
	c := smtp.NewClient(conn)
	defer c.Close()
	defer context.AfterFunc(ctx, func() { conn.Close() })()
	c.CommandTimeout, c.SubmissionTimeout = probeCommandTimeout, submissionTimeout
	slots, err := probeTransaction(c, l.plan, gen, id)
	if err != nil {
		return time.Time{}, err
	}
	at := time.Now()
	l.injected.Add(1)
	l.rcptsAccepted.Add(int64(len(slots)))
	l.accept(id, slots)
	_ = c.Quit()
	return at, nil
}

// probeTransaction sends EHLO and one transaction of message id, every
// recipient required; it returns the recipients' slots.
func probeTransaction(c *smtp.Client, p *plan, gen *generator, id int) ([]int, error) {
	if err := c.Hello(ehloName); err != nil {
		return nil, err
	}
	if err := c.Mail(senderAddr, &smtp.MailOptions{Size: int64(p.size)}); err != nil {
		return nil, err
	}
	slots := make([]int, p.rcpts)
	for j := range slots {
		slots[j] = id*p.rcpts + j
		if err := c.Rcpt(p.addr(slots[j]), nil); err != nil {
			return nil, err
		}
	}
	msg, err := gen.build(nil, id, time.Now())
	if err != nil {
		return nil, err
	}
	w, err := c.Data()
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(msg); err != nil {
		return nil, err
	}
	return slots, w.Close()
}

// fill completes the stats once mtad has stopped.
func (rs *recoveryStats) fill(l *ledger, st *phaseStats, release int64, end mtadEnd) {
	if last := l.lastDelivery(); last > release {
		rs.DrainSeconds = seconds(last - release)
	}
	rs.Delivered, rs.Missing, rs.Duplicates = st.Delivered, st.Missing, st.Duplicates
	rs.RSSAfterRestart = summariseRSS(end.rss, end.hwm)
	rs.Journal = end.journal
}

// judgeRecovery records the broken promises: a slow restart, a lost
// message, a duplicate that no delivery in flight at the kill explains.
func (r *rig) judgeRecovery(rs *recoveryStats) {
	switch {
	case rs.RestartTo250 == nil:
		r.fail("no 250 for the probe after the restart: %s", rs.ProbeError)
	case *rs.RestartTo250 > restartLimit.Seconds():
		r.fail("first 250 %.2f s after the restart > %s", *rs.RestartTo250, restartLimit)
	}
	if rs.Missing > 0 {
		r.fail("%d messages accepted before the kill (or the probe) never arrived", rs.Missing)
	}
	if rs.Duplicates > rs.DeliveredBeforeKill {
		r.fail("%d duplicate deliveries; at most %d (deliveries before the kill) allowed", rs.Duplicates, rs.DeliveredBeforeKill)
	}
	for _, s := range []*rssStats{rs.RSSBeforeKill, rs.RSSAfterRestart} {
		if s != nil && s.PeakKiB > rssLimitKiB {
			r.rep.Warnings = append(r.rep.Warnings, fmt.Sprintf("mtad peak RSS %s > 1 GiB", mib(s.PeakKiB)))
		}
	}
}

// rows prints the recovery section of the report.
func (rs *recoveryStats) rows(row func(k, f string, a ...any)) {
	row("injected/s before kill", "%.1f (%d accepted in %.1f s while the sink deferred every recipient)", rs.InjectRate, rs.Accepted, rs.InjectSeconds)
	row("restart exec -> first 250", "%s (probe attempts %d, every %s; bound %s)", optText(rs.RestartTo250, "%.2f s"), rs.ProbeAttempts, probeInterval, restartLimit)
	if rs.ProbeError != "" {
		row("  probe", "%s", rs.ProbeError)
	}
	row("after release", "delivered %d, missing %d, duplicates %d (allowed %d: deliveries before the kill)", rs.Delivered, rs.Missing, rs.Duplicates, rs.DeliveredBeforeKill)
	row("time to drain", "%.1f s from release to the last delivery", rs.DrainSeconds)
	rs.RSSBeforeKill.rows(row, "killed mtad")
	rs.RSSAfterRestart.rows(row, "restarted mtad")
	rs.Journal.rows(row)
}
