// Package testsink is a recording SMTP server on loopback for tests: a real
// go-smtp server whose replies to MAIL, RCPT and DATA a test can script.
package testsink

import (
	"bytes"
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
	From  string
	Rcpts []string
	Data  []byte
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
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("testsink: %v", err)
	}
	s := &Sink{Addr: l.Addr().String()}
	s.srv = smtp.NewServer(s)
	s.srv.Domain = "sink.test"
	s.srv.ReadTimeout, s.srv.WriteTimeout = 10*time.Second, 10*time.Second
	s.srv.EnableDSN, s.srv.EnableSMTPUTF8 = true, true
	s.srv.MaxRecipients = 1000
	s.srv.ErrorLog = log.New(io.Discard, "", 0)
	go func() { _ = s.srv.Serve(l) }()
	t.Cleanup(func() { _ = s.srv.Close() })
	return s
}

// SetRcptReply scripts the reply to each RCPT (nil accepts).
func (s *Sink) SetRcptReply(f func(rcpt string) *smtp.SMTPError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rcptReply = f
}

// Txs returns the transactions accepted so far.
func (s *Sink) Txs() []Tx {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Tx(nil), s.txs...)
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
func (s *Sink) NewSession(*smtp.Conn) (smtp.Session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.conns++
	s.live++
	s.maxConns = max(s.maxConns, s.live)
	return &session{s: s}, nil
}

type session struct {
	s      *Sink
	tx     Tx
	closed bool
}

func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	ss.tx = Tx{From: from}
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
	ss.s.mu.Lock()
	ss.s.txs = append(ss.s.txs, ss.tx)
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
