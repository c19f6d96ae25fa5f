package main

import (
	"sync/atomic"
	"time"
)

// clock gives monotonic offsets from the start of a phase. An offset is at
// least 1 ns, so 0 can mean "not yet".
type clock struct{ start time.Time }

func newClock() clock { return clock{start: time.Now()} }

func (c clock) now() int64 { return max(int64(time.Since(c.start)), 1) }

// Bits of a slot's state word.
const (
	bitExpected   uint32 = 1 << iota // the injector got 250 for a transaction holding this recipient and the sink will accept it
	bitDelivered                     // the sink received the message for this recipient
	bitTempFailed                    // the sink already answered this recipient 451 once
)

// ledger is the shared, lock-free record of one phase: the injector writes
// what was accepted and when, the sink what was delivered and when. Every
// field is atomic, so any goroutine may call any method.
//
// Ordering: a time is stored before the state bit that announces it, so a
// reader that sees a bit also sees the time.
type ledger struct {
	plan  *plan
	clock clock

	acceptedAt  []atomic.Int64  // by message id: clock offset when the 250 after DATA came back
	deliveredAt []atomic.Int64  // by slot: clock offset of the first delivery
	sendLatency []atomic.Int64  // by slot: wall-clock ns from X-Bench-Sent to the first delivery
	firstRcptAt []atomic.Int64  // by slot: clock offset of the sink's answer to the slot's first RCPT
	state       []atomic.Uint32 // by slot: bit* flags

	injectStart, injectEnd atomic.Int64 // clock offsets

	// CPU time (ns) spent from the injection's start to the last delivery:
	// by the harness (injector and sink), and by mtad (0: not measured).
	harnessCPU, mtadCPU atomic.Int64

	// Injector counters (messages unless named rcpts).
	injected, accepted, rejected, errors atomic.Int64
	rcptsAccepted, rcptsRejected         atomic.Int64
	expected                             atomic.Int64 // slots marked bitExpected
	connFailures                         atomic.Int64 // failed connects (and greetings)
	firstError, firstRejection           atomic.Pointer[string]

	// Sink counters.
	done                     atomic.Int64 // slots both expected and delivered
	sinkMessages, deliveries atomic.Int64 // DATA transactions; recipient deliveries incl. duplicates
	duplicates, foreign      atomic.Int64 // repeated slot deliveries; messages or recipients not of this plan
	tempFails, permFails     atomic.Int64 // RCPTs answered 451 / 550
	malformed, sinkSessions  atomic.Int64 // bench messages without a usable X-Bench-Sent; SMTP sessions
	deferred                 atomic.Int64 // RCPTs answered 451 while the sink was deferring
	sizeMismatches           atomic.Int64 // bench messages whose body was not the size sent
}

func newLedger(p *plan) *ledger {
	return &ledger{
		plan:        p,
		clock:       newClock(),
		acceptedAt:  make([]atomic.Int64, p.n),
		deliveredAt: make([]atomic.Int64, p.slots()),
		sendLatency: make([]atomic.Int64, p.slots()),
		firstRcptAt: make([]atomic.Int64, p.slots()),
		state:       make([]atomic.Uint32, p.slots()),
	}
}

// accept records that message id was accepted with the recipients at
// slots. Recipients the sink will reject for good are not expected.
func (l *ledger) accept(id int, slots []int) {
	l.acceptedAt[id].Store(l.clock.now())
	l.accepted.Add(1)
	for _, slot := range slots {
		if l.plan.class(slot) == classPerm {
			continue
		}
		l.expected.Add(1)
		if l.state[slot].Or(bitExpected)&bitDelivered != 0 {
			l.done.Add(1)
		}
	}
}

// deliver records that the sink received slot's message for slot's
// recipient; sent is its X-Bench-Sent value (wall-clock unix ns), 0 when
// missing. It reports false for a duplicate.
func (l *ledger) deliver(slot int, sent int64) bool {
	l.deliveries.Add(1)
	now := l.clock.now()
	if !l.deliveredAt[slot].CompareAndSwap(0, now) {
		l.duplicates.Add(1)
		return false
	}
	if sent > 0 {
		l.sendLatency[slot].Store(time.Now().UnixNano() - sent)
	}
	if l.state[slot].Or(bitDelivered)&bitExpected != 0 {
		l.done.Add(1)
	}
	return true
}

// firstRcpt records the time of slot's first RCPT at the sink, whatever the
// answer; later ones leave it alone.
func (l *ledger) firstRcpt(slot int) {
	if l.firstRcptAt[slot].Load() == 0 {
		l.firstRcptAt[slot].CompareAndSwap(0, l.clock.now())
	}
}

// lastDelivery is the clock offset of the latest first delivery of any
// slot, 0 when none arrived.
func (l *ledger) lastDelivery() int64 {
	var last int64
	for i := range l.deliveredAt {
		last = max(last, l.deliveredAt[i].Load())
	}
	return last
}

// tempFailFirst reports whether this is the first RCPT for slot, which the
// sink then answers 451; every later one is accepted.
func (l *ledger) tempFailFirst(slot int) bool {
	return l.state[slot].Or(bitTempFailed)&bitTempFailed == 0
}

// complete reports whether every expected delivery has arrived once the
// injection is over.
func (l *ledger) complete() bool {
	return l.injectEnd.Load() != 0 && l.done.Load() >= l.expected.Load()
}

// noteError keeps the first injector error for the report.
func (l *ledger) noteError(err error) {
	s := err.Error()
	l.firstError.CompareAndSwap(nil, &s)
}

// noteRejection keeps the first refusal the injector saw for the report.
func (l *ledger) noteRejection(err error) {
	s := err.Error()
	l.firstRejection.CompareAndSwap(nil, &s)
}
