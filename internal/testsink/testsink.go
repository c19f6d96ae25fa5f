// Package testsink is a recording SMTP server on loopback for tests: a real
// go-smtp server whose replies to MAIL, RCPT and DATA a test can script.
package testsink

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"log"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// Tx is one transaction the sink accepted.
type Tx struct {
	From       string
	Rcpts      []string
	Data       []byte
	Time       time.Time // when DATA ended
	Helo       string    // the client's EHLO name
	Local      string    // the address the client connected to
	TLS        bool      // the transaction ran over TLS
	RequireTLS bool      // MAIL FROM carried REQUIRETLS
}

// Sink is a running SMTP server.
type Sink struct {
	Addr string // 127.0.0.1:port

	mu       sync.Mutex
	txs      []Tx
	conns    int
	maxConns int
	live     int
	// RcptReply, if set, is asked for each RCPT: nil accepts.
	rcptReply func(rcpt string) *smtp.SMTPError
	// dataReply, for LMTP, is asked for each accepted recipient after DATA.
	dataReply func(rcpt string) *smtp.SMTPError
	dataDelay time.Duration
	inData    map[string]int // transactions in DATA by key
	peakData  map[string]int
	dataKey   func(Tx) string
	srv       *smtp.Server
}

// Start serves on 127.0.0.1:0 until the test ends.
func Start(t testing.TB) *Sink {
	t.Helper()
	return StartOn(t, "127.0.0.1:0")
}

// StartOn serves on addr until the test ends.
func StartOn(t testing.TB, addr string) *Sink {
	t.Helper()
	return start(t, addr, false)
}

// StartTLSOn serves on addr, offering STARTTLS (and REQUIRETLS) with cfg.
func StartTLSOn(t testing.TB, addr string, cfg *tls.Config) *Sink {
	t.Helper()
	s := start(t, addr, false)
	s.srv.TLSConfig = cfg
	s.srv.EnableREQUIRETLS = true
	return s
}

// StartLMTP serves LMTP on 127.0.0.1:0 until the test ends.
func StartLMTP(t testing.TB) *Sink {
	t.Helper()
	return start(t, "127.0.0.1:0", true)
}

func start(t testing.TB, addr string, lmtp bool) *Sink {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("testsink: %v", err)
	}
	s := &Sink{Addr: l.Addr().String(), inData: map[string]int{}, peakData: map[string]int{}}
	s.srv = smtp.NewServer(s)
	s.srv.LMTP = lmtp
	s.srv.Domain = "sink.test"
	s.srv.ReadTimeout, s.srv.WriteTimeout = 10*time.Second, 10*time.Second
	s.srv.EnableDSN, s.srv.EnableSMTPUTF8 = true, true
	s.srv.MaxRecipients = 1000
	s.srv.ErrorLog = log.New(io.Discard, "", 0)
	go func() { _ = s.srv.Serve(l) }() // TLSConfig may be set before the first client
	t.Cleanup(s.stop)
	return s
}

// SetRcptReply scripts the reply to each RCPT (nil accepts).
func (s *Sink) SetRcptReply(f func(rcpt string) *smtp.SMTPError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rcptReply = f
}

// SetDataReply scripts the per-recipient reply after DATA (LMTP).
func (s *Sink) SetDataReply(f func(rcpt string) *smtp.SMTPError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dataReply = f
}

// SetDataDelay makes each DATA take d, and counts the transactions in DATA
// at once per key(tx) (see PeakInData).
func (s *Sink) SetDataDelay(d time.Duration, key func(Tx) string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dataDelay, s.dataKey = d, key
}

// PeakInData returns the most transactions seen in DATA at once for key.
func (s *Sink) PeakInData(key string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peakData[key]
}

// Txs returns the transactions accepted so far.
func (s *Sink) Txs() []Tx {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Tx(nil), s.txs...)
}

// Count returns how many transactions were accepted so far, without
// copying them.
func (s *Sink) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.txs)
}

// Rcpts returns every recipient delivered so far, in order.
func (s *Sink) Rcpts() []string {
	var out []string
	for _, tx := range s.Txs() {
		out = append(out, tx.Rcpts...)
	}
	return out
}

// Conns returns how many connections were opened and the most open at once.
func (s *Sink) Conns() (total, peak int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns, s.maxConns
}

// Live returns how many connections are open now.
func (s *Sink) Live() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.live
}

// NewSession implements smtp.Backend.
func (s *Sink) NewSession(c *smtp.Conn) (smtp.Session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.conns++
	s.live++
	s.maxConns = max(s.maxConns, s.live)
	_, isTLS := c.TLSConnectionState()
	return &session{s: s, helo: c.Hostname(), local: c.Conn().LocalAddr().String(), tls: isTLS}, nil
}

type session struct {
	s      *Sink
	tx     Tx
	helo   string
	local  string
	tls    bool
	closed bool
}

func (ss *session) Mail(from string, opts *smtp.MailOptions) error {
	ss.tx = Tx{From: from, Helo: ss.helo, Local: ss.local, TLS: ss.tls, RequireTLS: opts != nil && opts.RequireTLS}
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	ss.s.mu.Lock()
	f := ss.s.rcptReply
	ss.s.mu.Unlock()
	if f != nil {
		if e := f(to); e != nil {
			return e
		}
	}
	ss.tx.Rcpts = append(ss.tx.Rcpts, to)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	var b bytes.Buffer
	if _, err := io.Copy(&b, r); err != nil {
		return err
	}
	ss.tx.Data = b.Bytes()
	ss.hold()
	ss.tx.Time = time.Now()
	ss.s.mu.Lock()
	ss.s.txs = append(ss.s.txs, ss.tx)
	ss.s.mu.Unlock()
	return nil
}

// hold waits the data delay, counting the transaction as in DATA.
func (ss *session) hold() {
	s := ss.s
	s.mu.Lock()
	d, keyf := s.dataDelay, s.dataKey
	key := ""
	if keyf != nil {
		key = keyf(ss.tx)
		s.inData[key]++
		s.peakData[key] = max(s.peakData[key], s.inData[key])
	}
	s.mu.Unlock()
	if d > 0 {
		time.Sleep(d)
	}
	if keyf != nil {
		s.mu.Lock()
		s.inData[key]--
		s.mu.Unlock()
	}
}

// LMTPData answers each accepted recipient after DATA (LMTP).
func (ss *session) LMTPData(r io.Reader, status smtp.StatusCollector) error {
	var b bytes.Buffer
	if _, err := io.Copy(&b, r); err != nil {
		return err
	}
	ss.s.mu.Lock()
	f := ss.s.dataReply
	ss.s.mu.Unlock()
	tx := ss.tx
	tx.Data, tx.Rcpts, tx.Time = b.Bytes(), nil, time.Now()
	for _, rc := range ss.tx.Rcpts {
		var e *smtp.SMTPError
		if f != nil {
			e = f(rc)
		}
		if e == nil {
			tx.Rcpts = append(tx.Rcpts, rc)
			status.SetStatus(rc, nil)
		} else {
			status.SetStatus(rc, e)
		}
	}
	ss.s.mu.Lock()
	ss.s.txs = append(ss.s.txs, tx)
	ss.s.mu.Unlock()
	return nil
}

func (ss *session) Reset() { ss.tx = Tx{} }

func (ss *session) Logout() error {
	if !ss.closed {
		ss.closed = true
		ss.s.mu.Lock()
		ss.s.live--
		ss.s.mu.Unlock()
	}
	return nil
}

// stop lets handlers finish before closing: go-smtp's Close races a
// handler still inside STARTTLS (it swaps the connection unlocked).
func (s *Sink) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		_ = s.srv.Close()
	}
}
