package outbound

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"log"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// sink is a go-smtp server on 127.0.0.1 whose replies are scripted per
// address and which records every transaction it saw.
type sink struct {
	srv    *smtp.Server
	target Target

	mu       sync.Mutex
	mailErr  error            // reply to MAIL
	rcptErr  map[string]error // reply to RCPT, per address
	dataErr  error            // reply after the body (SMTP)
	lmtpErr  map[string]error // reply after the body, per recipient (LMTP)
	dropData bool             // close the connection when DATA starts
	auth     *sinkAuth        // offer AUTH and require it for MAIL (auth_test.go)
	sessions int
	txs      []*sinkTx
	debug    syncBuffer
}

// sinkTx is what the sink saw of one transaction, from MAIL on.
type sinkTx struct {
	From     string
	TLS      bool // the session was TLS at MAIL
	Mail     smtp.MailOptions
	Rcpts    []string // every RCPT, accepted or not
	RcptOpts []smtp.RcptOptions
	accepted []string
	Data     bool // a whole message arrived
	Body     []byte
	dataErr  error // reading the message failed
}

// newSink starts a sink; setup may change the server before it serves. A
// TLSConfig set there makes it an implicit TLS listener (starttlsSink
// offers it as STARTTLS instead).
func newSink(t *testing.T, setup func(*smtp.Server)) *sink {
	t.Helper()
	return startSink(t, setup, true)
}

// starttlsSink is a sink whose TLSConfig, set by setup, serves STARTTLS on
// a plain listener.
func starttlsSink(t *testing.T, setup func(*smtp.Server)) *sink {
	t.Helper()
	return startSink(t, setup, false)
}

func startSink(t *testing.T, setup func(*smtp.Server), implicitTLS bool) *sink {
	t.Helper()
	s := &sink{rcptErr: map[string]error{}, lmtpErr: map[string]error{}}
	s.srv = smtp.NewServer(smtp.BackendFunc(s.newSession))
	s.srv.Domain = "sink.test"
	s.srv.ErrorLog = log.New(io.Discard, "", 0)
	s.srv.Debug = &s.debug
	if setup != nil {
		setup(s.srv)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if implicitTLS && s.srv.TLSConfig != nil {
		l = tls.NewListener(l, s.srv.TLSConfig)
	}
	s.target = Target{Host: "sink.test", Addr: netip.MustParseAddrPort(l.Addr().String())}
	go s.srv.Serve(l)
	t.Cleanup(func() { stopServer(s.srv) })
	return s
}

func (s *sink) newSession(c *smtp.Conn) (smtp.Session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sessions++
	ss := &session{s: s, conn: c}
	if s.auth != nil {
		return &authSession{session: ss, a: s.auth}, nil
	}
	if s.srv.LMTP {
		return &lmtpSession{ss}, nil
	}
	return ss, nil
}

// transactions returns a copy of what the sink saw.
func (s *sink) transactions() []sinkTx {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]sinkTx, len(s.txs))
	for i, tx := range s.txs {
		out[i] = *tx
	}
	return out
}

func (s *sink) sessionCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions
}

// script sets the replies under the lock.
func (s *sink) script(f func(s *sink)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
}

type session struct {
	s    *sink
	conn *smtp.Conn
	tx   *sinkTx
}

func (ss *session) Reset()        { ss.tx = nil }
func (ss *session) Logout() error { return nil }

func (ss *session) Mail(from string, o *smtp.MailOptions) error {
	ss.s.mu.Lock()
	defer ss.s.mu.Unlock()
	_, isTLS := ss.conn.TLSConnectionState()
	ss.tx = &sinkTx{From: from, TLS: isTLS}
	if o != nil {
		ss.tx.Mail = *o
	}
	ss.s.txs = append(ss.s.txs, ss.tx)
	return ss.s.mailErr
}

func (ss *session) Rcpt(to string, o *smtp.RcptOptions) error {
	ss.s.mu.Lock()
	defer ss.s.mu.Unlock()
	ss.tx.Rcpts = append(ss.tx.Rcpts, to)
	var opts smtp.RcptOptions
	if o != nil {
		opts = *o
	}
	ss.tx.RcptOpts = append(ss.tx.RcptOpts, opts)
	err := ss.s.rcptErr[to]
	if err == nil {
		ss.tx.accepted = append(ss.tx.accepted, to)
	}
	return err
}

func (ss *session) Data(r io.Reader) error {
	ss.s.mu.Lock()
	drop := ss.s.dropData
	ss.s.mu.Unlock()
	if drop {
		ss.conn.Conn().Close()
		return io.ErrUnexpectedEOF
	}
	body, err := io.ReadAll(r)
	ss.s.mu.Lock()
	defer ss.s.mu.Unlock()
	if err != nil {
		ss.tx.dataErr = err
		return err
	}
	ss.tx.Data, ss.tx.Body = true, body
	return ss.s.dataErr
}

type lmtpSession struct{ *session }

func (ls *lmtpSession) LMTPData(r io.Reader, status smtp.StatusCollector) error {
	if err := ls.Data(r); err != nil {
		return err
	}
	ls.s.mu.Lock()
	defer ls.s.mu.Unlock()
	for _, to := range ls.tx.accepted {
		status.SetStatus(to, ls.s.lmtpErr[to])
	}
	return nil
}

func smtpErr(code int, enh smtp.EnhancedCode, msg string) *smtp.SMTPError {
	return &smtp.SMTPError{Code: code, EnhancedCode: enh, Message: msg}
}

// syncBuffer is a bytes.Buffer safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// rawServer is a line-scripted server on 127.0.0.1 for what go-smtp's
// server cannot be made to do: it sends greeting (nothing if ""), then
// answers each command line with reply(line) (nothing if ""). It records
// the commands.
type rawServer struct {
	target Target
	mu     sync.Mutex
	cmds   []string
}

func newRawServer(t *testing.T, greeting string, reply func(cmd string) string) *rawServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rs := &rawServer{target: Target{Host: "raw.test", Addr: netip.MustParseAddrPort(l.Addr().String())}}
	var wg sync.WaitGroup
	var conns sync.Map
	t.Cleanup(func() {
		l.Close()
		conns.Range(func(k, _ any) bool { k.(net.Conn).Close(); return true })
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns.Store(c, true)
			wg.Go(func() { rs.serve(c, greeting, reply) })
		}
	})
	return rs
}

func (rs *rawServer) serve(c net.Conn, greeting string, reply func(string) string) {
	defer c.Close()
	io.WriteString(c, greeting)
	sc := bufio.NewScanner(c)
	for sc.Scan() {
		line := strings.TrimSuffix(sc.Text(), "\r")
		rs.mu.Lock()
		rs.cmds = append(rs.cmds, line)
		rs.mu.Unlock()
		io.WriteString(c, reply(line))
	}
}

func (rs *rawServer) commands() []string {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return append([]string(nil), rs.cmds...)
}

// closedTarget is a 127.0.0.1 port nobody listens on.
func closedTarget(t *testing.T) Target {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := netip.MustParseAddrPort(l.Addr().String())
	l.Close()
	return Target{Host: "closed.test", Addr: addr}
}

// eventually polls cond until it holds or a deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// stopServer lets handlers finish before closing: go-smtp's Close races a
// handler still inside STARTTLS (it swaps the connection unlocked).
func stopServer(srv *smtp.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		srv.Close()
	}
}
