package actors

import (
	"bytes"
	"fmt"
	"log/slog"
	"time"

	"github.com/mtad/mtad/config"
	"github.com/mtad/mtad/deliverylog"
	"github.com/mtad/mtad/dsn"
	"github.com/mtad/mtad/messages"
)

// A queue actor reports on recipients with delivery status notifications
// (RFC 3461/3464): failed (a permanent reply, the last attempt, expiry),
// delayed (at the schedule's notify times, measured from arrival) and, when
// NOTIFY=SUCCESS asked for it, delivered (final delivery here) or relayed
// (handed to a next hop that does not speak DSN; one that does reports
// itself). A DSN is a new message from the null reverse path to the
// original sender, journaled before the state it reports on, so a crash
// may repeat a DSN but never lose one. A message from the null reverse
// path never gets a DSN.

// notice is one recipient to report on in a DSN.
type notice struct {
	index  uint32
	action dsn.Action
	remote string
}

// wantNotice adds a notice to p when the recipient asked for one.
func wantNotice(p *persisted, env *messages.Envelope, rc *messages.Recipient, a dsn.Action, remote string) {
	if env.From != "" && dsn.Wanted(rc.Notify, a) {
		p.notices = append(p.notices, notice{index: rc.Index, action: a, remote: remote})
	}
}

// dsnJob is everything a journal goroutine needs to build and journal a
// DSN: copies, so it never touches actor state.
type dsnJob struct {
	cfg   *config.Config
	log   *slog.Logger
	env   *messages.Envelope
	rcpts []dsn.Recipient
}

// dsnJob collects the notices of p, with the recipients' states as they
// are now. It runs on the queue actor's goroutine.
func (q *queueActor) dsnJob(m *qmsg, p *persisted) *dsnJob {
	if len(p.notices) == 0 {
		return nil
	}
	d := &dsnJob{cfg: q.deps.Cfg(), log: q.deps.Logger, env: cloneEnvelope(m.env)}
	for _, n := range p.notices {
		rc := m.env.Rcpts[n.index]
		r := dsn.Recipient{Addr: rc.Addr, ORcpt: rc.ORcpt, Action: n.action, Reply: rc.LastReply, RemoteMTA: n.remote}
		if rc.Attempts > 0 {
			r.LastAttempt = time.Now()
		}
		if n.action == dsn.Delayed {
			if s := q.scheduleOf(m.env, &rc); s.Expire > 0 {
				r.WillRetryUntil = m.env.Arrival.Add(s.Expire)
			}
		}
		d.rcpts = append(d.rcpts, r)
	}
	return d
}

// journal builds the DSN and journals it as a new message; it runs on a
// journal goroutine before the reported states are written. The returned
// envelope is enqueued once they are.
func (d *dsnJob) journal(j Journal) (*messages.Envelope, error) {
	// Enough to tell whether RET=FULL gets the whole message back; a
	// larger one returns its header section only.
	original, err := j.BodyPrefix(d.env.ID, dsn.DefaultMaxFull+1)
	if err != nil {
		return nil, fmt.Errorf("dsn for %v: %w", d.env.ID, err)
	}
	now := time.Now()
	orig := d.env
	if orig.RequireTLS {
		// RFC 8689 section 5: a bounce of a REQUIRETLS message carries
		// no more than its headers, and itself requires TLS.
		c := *orig
		c.Ret = messages.RetHdrs
		orig = &c
	}
	raw, err := dsn.Build(dsn.Report{ReportingMTA: d.cfg.Server.Hostname, Envelope: orig,
		Recipients: d.rcpts, Original: original, OriginalSize: d.env.Size, Now: now})
	if err != nil {
		return nil, &buildError{fmt.Errorf("dsn for %v: %w", d.env.ID, err)}
	}
	env := &messages.Envelope{ID: j.NextID(), Size: int64(len(raw)), Arrival: now, Source: "dsn",
		SMTPUTF8: d.env.SMTPUTF8, RequireTLS: d.env.RequireTLS, Body: messages.Body7Bit,
		Rcpts: []messages.Recipient{{Index: 0, Addr: d.env.From, Notify: messages.NotifyNever}}}
	if bytes.IndexFunc(raw, func(r rune) bool { return r >= 0x80 }) >= 0 {
		env.Body = messages.Body8BitMIME
	}
	env.Rcpts[0].Queue = placeRecipient(d.cfg, d.log, env, &env.Rcpts[0])
	if err := j.Accept(env, raw); err != nil {
		return nil, fmt.Errorf("dsn for %v: %w", d.env.ID, err)
	}
	return env, nil
}

// event is the delivery log's record of a DSN sent.
func (d *dsnJob) event(env *messages.Envelope, queue string) deliverylog.Event {
	from := ""
	actions := ""
	for i, r := range d.rcpts {
		if i > 0 {
			actions += ", "
		}
		actions += string(r.Action) + " " + r.Addr
	}
	return deliverylog.Event{Event: deliverylog.DSN, MsgID: d.env.ID.String(), Rcpt: d.env.From, Sender: &from,
		Queue: queue, Reply: actions, DSN: env.ID.String(), Size: env.Size}
}

// notifyDue reports whether a delayed DSN is due for rc now, and when the
// next one is due otherwise (zero when none will be).
func notifyDue(env *messages.Envelope, rc *messages.Recipient, s config.Schedule, now time.Time) (due bool, next time.Time) {
	if env.From == "" || rc.NotifyNum >= len(s.Notify) || !dsn.Wanted(rc.Notify, dsn.Delayed) || rc.Attempts == 0 {
		return false, time.Time{}
	}
	at := env.Arrival.Add(s.Notify[rc.NotifyNum])
	if !at.After(now) {
		return true, time.Time{}
	}
	return false, at
}

// buildError is a DSN that cannot be built from its message (a bad return
// path, say): no retry would build it, so the state is written anyway.
type buildError struct{ err error }

func (e *buildError) Error() string { return e.err.Error() }
func (e *buildError) Unwrap() error { return e.err }

// notifyCount is how many of the schedule's notify times have passed: after
// downtime, one delayed DSN covers them all.
func notifyCount(env *messages.Envelope, s config.Schedule, now time.Time) int {
	n := 0
	for _, d := range s.Notify {
		if !env.Arrival.Add(d).After(now) {
			n++
		}
	}
	return n
}
