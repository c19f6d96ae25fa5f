package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log"
	"math"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
)

// Replies of the sink for recipients of the temp and perm classes, and for
// every recipient while it defers.
var (
	errDefer    = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 7, 1}, Message: "try later"}
	errTempFail = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 7, 1}, Message: "bench sink: try again later"}
	errPermFail = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "bench sink: no such user"}
)

// Network bounds of the sink.
const (
	sinkReadTimeout  = 2 * time.Minute
	sinkWriteTimeout = 30 * time.Second
	sinkMaxMessage   = 64 << 20
)

// sink is the destination of a phase: an SMTP server on loopback that
// answers each RCPT by the recipient's class in the plan and records every
// delivery in the ledger. It reads only the header section of a message,
// counts the body's bytes without keeping them and checks their number.
//
// While deferring (setDefer), it answers every RCPT 451 4.7.1, so the
// sender must queue everything; any goroutine may switch it.
type sink struct {
	l         *ledger
	srv       *smtp.Server
	ln        net.Listener
	served    chan error // Serve's result, sent once
	deferring atomic.Bool
}

var _ smtp.Backend = (*sink)(nil)

// startSink listens on listen (a loopback address) and serves until close.
func startSink(listen string, l *ledger) (*sink, error) {
	if err := requireLoopback(listen); err != nil {
		return nil, fmt.Errorf("sink: %w", err)
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("sink: %w", err)
	}
	s := &sink{l: l, ln: ln, served: make(chan error, 1)}
	s.srv = smtp.NewServer(s)
	s.srv.Domain = sinkDomain
	s.srv.MaxMessageBytes = max(sinkMaxMessage, 2*int64(l.plan.size))
	s.srv.ReadTimeout = sinkReadTimeout
	s.srv.WriteTimeout = sinkWriteTimeout
	s.srv.ErrorLog = log.New(io.Discard, "", 0) // peers that hang up are not news
	go func() { s.served <- s.srv.Serve(ln) }()
	return s, nil
}

// setDefer switches between deferring every recipient (on) and answering
// by the plan (off).
func (s *sink) setDefer(on bool) { s.deferring.Store(on) }

// addr is the address the sink listens on.
func (s *sink) addr() string { return s.ln.Addr().String() }

// close stops the listener and drops open connections.
func (s *sink) close() error {
	err := s.srv.Close()
	if serr := <-s.served; serr != nil && err == nil {
		err = serr
	}
	return err
}

// NewSession implements smtp.Backend.
func (s *sink) NewSession(*smtp.Conn) (smtp.Session, error) {
	s.l.sinkSessions.Add(1)
	return &sinkSession{l: s.l, sink: s}, nil
}

// sinkSession is one SMTP connection to the sink; go-smtp calls its methods
// from the connection's goroutine only.
type sinkSession struct {
	l     *ledger
	sink  *sink
	slots []int // accepted recipients of the current transaction
}

var _ smtp.Session = (*sinkSession)(nil)

func (ss *sinkSession) Reset()                               { ss.slots = ss.slots[:0] }
func (ss *sinkSession) Logout() error                        { return nil }
func (ss *sinkSession) Mail(string, *smtp.MailOptions) error { return nil }

// Rcpt answers 451 while the sink defers, else by the recipient's class;
// addresses not of the plan (DSNs to the sender, say) are accepted and not
// tracked.
func (ss *sinkSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	slot, ok := ss.l.plan.slotOf(to)
	if ok {
		ss.l.firstRcpt(slot)
	}
	if ss.sink.deferring.Load() {
		ss.l.deferred.Add(1)
		return errDefer
	}
	if !ok {
		return nil
	}
	switch ss.l.plan.class(slot) {
	case classPerm:
		ss.l.permFails.Add(1)
		return errPermFail
	case classTemp:
		if ss.l.tempFailFirst(slot) {
			ss.l.tempFails.Add(1)
			return errTempFail
		}
	}
	ss.slots = append(ss.slots, slot)
	return nil
}

// Data reads the bench headers, counts the rest and records a delivery
// for each tracked recipient.
func (ss *sinkSession) Data(r io.Reader) error {
	h, body, err := readBenchHeaders(r, ss.l.plan.run)
	if err != nil {
		return err
	}
	ss.l.sinkMessages.Add(1)
	if !h.ours || len(ss.slots) == 0 {
		ss.l.foreign.Add(1)
		return nil
	}
	switch {
	case h.sent == 0:
		ss.l.malformed.Add(1)
	case body != int64(ss.l.plan.bodySize(h.id, h.sent)):
		ss.l.sizeMismatches.Add(1)
	}
	for _, slot := range ss.slots {
		if slot/ss.l.plan.rcpts != h.id {
			ss.l.foreign.Add(1)
			continue
		}
		ss.l.deliver(slot, h.sent)
	}
	return nil
}

// benchHeaders are the X-Bench-* fields of a message.
type benchHeaders struct {
	ours bool  // X-Bench-Run is this plan's, and X-Bench-Id is present
	id   int   // X-Bench-Id
	sent int64 // X-Bench-Sent, unix ns; 0 when missing
}

var (
	readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4096) }}
	nameRun    = []byte(hdrRun)
	nameID     = []byte(hdrID)
	nameSent   = []byte(hdrSent)
)

// readBenchHeaders parses the header section of r for run's fields and
// consumes the rest of r, the body, whose size it returns.
func readBenchHeaders(r io.Reader, run string) (benchHeaders, int64, error) {
	br := readerPool.Get().(*bufio.Reader)
	br.Reset(r)
	defer func() {
		br.Reset(nil)
		readerPool.Put(br)
	}()
	h, err := parseBenchHeaders(br, run)
	if err != nil {
		return h, 0, err
	}
	body, err := br.WriteTo(io.Discard)
	return h, body, err
}

// parseBenchHeaders reads header lines up to the blank line (or the end).
// Folded and over-long lines are skipped: the bench fields are neither.
func parseBenchHeaders(br *bufio.Reader, run string) (benchHeaders, error) {
	f := fieldSet{run: run}
	for {
		line, err := br.ReadSlice('\n')
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			if err := skipLine(br); err != nil && !errors.Is(err, io.EOF) {
				return benchHeaders{}, err
			}
			continue
		case errors.Is(err, io.EOF):
			return f.headers(), nil
		case err != nil:
			return benchHeaders{}, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			return f.headers(), nil
		}
		f.add(line)
	}
}

// fieldSet collects the X-Bench-* values of one header section.
type fieldSet struct {
	run         string // the plan's run tag
	id, sent    int64
	idOK, runOK bool
}

// add looks at one unfolded header line. line aliases the reader's buffer,
// so nothing of it is kept.
func (f *fieldSet) add(line []byte) {
	name, value, ok := bytes.Cut(line, []byte{':'})
	if !ok {
		return
	}
	value = bytes.TrimSpace(value)
	switch {
	case bytes.EqualFold(name, nameRun):
		f.runOK = string(value) == f.run
	case bytes.EqualFold(name, nameID):
		f.id, f.idOK = parseDigits(value)
	case bytes.EqualFold(name, nameSent):
		f.sent, _ = parseDigits(value)
	}
}

func (f *fieldSet) headers() benchHeaders {
	return benchHeaders{ours: f.idOK && f.runOK, id: int(f.id), sent: f.sent}
}

// skipLine consumes the rest of a line longer than the reader's buffer.
func skipLine(br *bufio.Reader) error {
	for {
		_, err := br.ReadSlice('\n')
		if !errors.Is(err, bufio.ErrBufferFull) {
			return err
		}
	}
}

// parseDigits parses a non-negative decimal int64 without allocating.
func parseDigits(b []byte) (int64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' || n > (math.MaxInt64-int64(c-'0'))/10 {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}
