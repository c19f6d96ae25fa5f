package outbound

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// pipeServer is a raw server on 127.0.0.1 for the pipelining tests. With
// pipelining it advertises PIPELINING and holds its replies from MAIL
// until DATA has arrived, so a client that waited for MAIL's reply would
// time out; it notes whether the whole group was already buffered when it
// read MAIL. reply scripts the answer to each line (the lone "." ending a
// message included).
type pipeServer struct {
	target     Target
	pipelining bool
	reply      func(cmd string) string

	mu      sync.Mutex
	cmds    []string // every line outside a message
	bodies  []string // every message, as received
	grouped []bool   // per MAIL: DATA was already buffered with it
}

func newPipeServer(t *testing.T, pipelining bool, reply func(string) string) *pipeServer {
	t.Helper()
	ps := &pipeServer{pipelining: pipelining, reply: reply}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ps.target = Target{Host: "pipe.test", Addr: netip.MustParseAddrPort(l.Addr().String())}
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
			wg.Go(func() { ps.serve(c) })
		}
	})
	return ps
}

// pipeReplies is the default script: everything accepted except RCPT to
// an address starting with "no" (550) or "later" (451).
func pipeReplies(cmd string) string {
	switch {
	case strings.HasPrefix(cmd, "RCPT TO:<no"):
		return "550 5.1.1 no such user\r\n"
	case strings.HasPrefix(cmd, "RCPT TO:<later"):
		return "451 4.2.1 try later\r\n"
	case cmd == "DATA":
		return "354 go ahead\r\n"
	case cmd == "QUIT":
		return "221 2.0.0 bye\r\n"
	}
	return "250 2.0.0 ok\r\n"
}

// pipeRepliesWith is pipeReplies with the replies of over to the
// commands it names.
func pipeRepliesWith(over map[string]string) func(string) string {
	return func(cmd string) string {
		if r, ok := over[cmd]; ok {
			return r
		}
		return pipeReplies(cmd)
	}
}

func (ps *pipeServer) serve(c net.Conn) {
	defer c.Close()
	io.WriteString(c, "220 pipe.test ESMTP\r\n")
	br := bufio.NewReader(c)
	var held bytes.Buffer // replies held from MAIL to DATA
	var body *strings.Builder
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimSuffix(line, "\r\n")
		if body != nil && line != "." {
			body.WriteString(line + "\n")
			continue
		}
		ps.mu.Lock()
		if body != nil {
			ps.bodies = append(ps.bodies, body.String())
			body = nil
		} else {
			ps.cmds = append(ps.cmds, line)
		}
		if strings.HasPrefix(line, "MAIL") {
			peek, _ := br.Peek(br.Buffered())
			ps.grouped = append(ps.grouped, bytes.Contains(peek, []byte("\r\nDATA\r\n")))
		}
		ps.mu.Unlock()
		r := ps.reply(line)
		switch {
		case strings.HasPrefix(line, "EHLO") && ps.pipelining:
			r = "250-pipe.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
		case strings.HasPrefix(line, "EHLO"):
			r = "250-pipe.test\r\n250 8BITMIME\r\n"
		}
		if line == "DATA" && strings.HasPrefix(r, "354") {
			body = &strings.Builder{}
		}
		if ps.pipelining && (strings.HasPrefix(line, "MAIL") || held.Len() > 0) {
			held.WriteString(r)
			if line != "DATA" {
				continue
			}
			r = held.String()
			held.Reset()
		}
		io.WriteString(c, r)
	}
}

func (ps *pipeServer) seen() (cmds, bodies []string, grouped []bool) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return slices.Clone(ps.cmds), slices.Clone(ps.bodies), slices.Clone(ps.grouped)
}

// Replies a test waits for come well within this; lock-step against a
// holding server would time out.
func pipeOpts() Options {
	opts := testOpts()
	opts.Timeouts.MailFrom = 2 * time.Second
	return opts
}

func TestPipelinedMixedReplies(t *testing.T) {
	ps := newPipeServer(t, true, pipeReplies)
	c := dialT(t, pipeOpts(), ps.target)
	got, err := c.Deliver(context.Background(), newTx("a@x.test", "later@x.test", "no@x.test", "b@x.test"))
	if err != nil {
		t.Fatal(err)
	}
	checkReplies(t, got, []want{ok250, {451, "4.2.1", "rcpt"}, {550, "5.1.1", "rcpt"}, ok250})
	cmds, bodies, grouped := ps.seen()
	wantCmds := []string{"EHLO client.test", "MAIL FROM:<sender@example.org> BODY=8BITMIME",
		"RCPT TO:<a@x.test>", "RCPT TO:<later@x.test>", "RCPT TO:<no@x.test>", "RCPT TO:<b@x.test>", "DATA"}
	if !slices.Equal(cmds, wantCmds) {
		t.Errorf("server saw %q, want %q", cmds, wantCmds)
	}
	if !slices.Equal(grouped, []bool{true}) {
		t.Errorf("MAIL, RCPT and DATA did not arrive in one read: %v", grouped)
	}
	if want := strings.ReplaceAll(testBody, "\r\n", "\n"); !slices.Equal(bodies, []string{want}) {
		t.Errorf("server got bodies %q, want one %q", bodies, want)
	}
}

func TestPipelinedNoRecipientAccepted(t *testing.T) {
	for _, dataReply := range []string{"354 go ahead\r\n", "554 5.5.1 no valid recipients\r\n"} {
		t.Run(dataReply[:3], func(t *testing.T) {
			ps := newPipeServer(t, true, untilRSET(func(cmd string) string {
				switch cmd {
				case "DATA":
					return dataReply
				case ".":
					return "554 5.5.1 no valid recipients\r\n"
				}
				return pipeReplies(cmd)
			}))
			c := dialT(t, pipeOpts(), ps.target)
			got, err := c.Deliver(context.Background(), newTx("no1@x.test", "later@x.test"))
			if err != nil {
				t.Fatal(err)
			}
			checkReplies(t, got, []want{{550, "5.1.1", "rcpt"}, {451, "4.2.1", "rcpt"}})
			_, bodies, _ := ps.seen()
			wantBodies := []string{""} // a lone "."
			if dataReply[0] != '3' {
				wantBodies = nil
			}
			if !slices.Equal(bodies, wantBodies) {
				t.Errorf("server got messages %q, want %q", bodies, wantBodies)
			}
			checkNextPipelined(t, ps, c, []string{"DATA"})
		})
	}
}

// untilRSET answers with first until the first RSET, then with
// pipeReplies. It runs on the server's one connection.
func untilRSET(first func(string) string) func(string) string {
	reset := false
	return func(cmd string) string {
		reset = reset || cmd == "RSET"
		if reset {
			return pipeReplies(cmd)
		}
		return first(cmd)
	}
}

// checkNextPipelined checks that the commands before the next transaction
// ended with tail, then delivers one more and checks that it arrived.
func checkNextPipelined(t *testing.T, ps *pipeServer, c *Conn, tail []string) {
	t.Helper()
	if !c.Alive() {
		t.Fatal("connection died")
	}
	cmds, bodies, _ := ps.seen()
	if len(cmds) < len(tail) || !slices.Equal(cmds[len(cmds)-len(tail):], tail) {
		t.Errorf("server saw %q, want it to end with %q", cmds, tail)
	}
	got, err := c.Deliver(context.Background(), newTx("next@x.test"))
	if err != nil {
		t.Fatalf("next Deliver: %v", err)
	}
	checkReplies(t, got, []want{ok250})
	// The failed transaction's RSET went out in front of the next MAIL.
	if next, _, _ := ps.seen(); len(next) < len(cmds)+2 || next[len(cmds)] != "RSET" || !strings.HasPrefix(next[len(cmds)+1], "MAIL ") {
		t.Errorf("after the failed transaction the server saw %q, want RSET then MAIL", next[len(cmds):])
	}
	_, after, _ := ps.seen()
	if len(after) != len(bodies)+1 || after[len(after)-1] != strings.ReplaceAll(testBody, "\r\n", "\n") {
		t.Errorf("next message not received: %q", after)
	}
}

func TestPipelinedMailRejected(t *testing.T) {
	for _, dataReply := range []string{"503 5.5.1 no MAIL\r\n", "354 go ahead\r\n"} {
		t.Run(dataReply[:3], func(t *testing.T) {
			ps := newPipeServer(t, true, untilRSET(func(cmd string) string {
				switch {
				case strings.HasPrefix(cmd, "MAIL"):
					return "550 5.7.1 go away\r\n"
				case strings.HasPrefix(cmd, "RCPT"):
					return "503 5.5.1 need MAIL first\r\n"
				case cmd == "DATA":
					return dataReply
				}
				return pipeReplies(cmd)
			}))
			c := dialT(t, pipeOpts(), ps.target)
			got, err := c.Deliver(context.Background(), newTx("a@x.test", "b@x.test\r\nDATA", "c@x.test"))
			if err != nil {
				t.Fatal(err)
			}
			r550 := want{550, "5.7.1", "mail"}
			checkReplies(t, got, []want{r550, r550, r550})
			checkNextPipelined(t, ps, c, []string{"DATA"})
		})
	}
}

func TestLockStepWithoutPipelining(t *testing.T) {
	ps := newPipeServer(t, false, pipeReplies)
	c := dialT(t, pipeOpts(), ps.target)
	got, err := c.Deliver(context.Background(), newTx("a@x.test", "no@x.test"))
	if err != nil {
		t.Fatal(err)
	}
	checkReplies(t, got, []want{ok250, {550, "5.1.1", "rcpt"}})
	if _, bodies, grouped := ps.seen(); !slices.Equal(grouped, []bool{false}) || len(bodies) != 1 {
		t.Errorf("MAIL arrived grouped %v, %d messages; want lock-step and 1", grouped, len(bodies))
	}
}

// A 421 among the pipelined replies ends the connection; the replies read
// before it stand.
func TestPipelined421(t *testing.T) {
	ps := newPipeServer(t, true, pipeRepliesWith(map[string]string{"RCPT TO:<b@x.test>": "421 4.3.2 shutting down\r\n"}))
	c := dialT(t, pipeOpts(), ps.target)
	got, err := c.Deliver(context.Background(), newTx("no@x.test", "b@x.test", "c@x.test"))
	var e *Error
	if !errors.As(err, &e) || e.Code != 421 || e.Stage != StageRcpt {
		t.Fatalf("Deliver error = %v, want 421 at rcpt", err)
	}
	r421 := want{421, "4.3.2", "rcpt"}
	checkReplies(t, got, []want{{550, "5.1.1", "rcpt"}, r421, r421})
	if c.Alive() {
		t.Error("connection alive after 421")
	}
}

// BenchmarkDeliver runs one-recipient transactions with a 5 KiB body, one
// after another on one connection to a go-smtp server on loopback.
func BenchmarkDeliver(b *testing.B) {
	body := bytes.Repeat([]byte("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ!?\r\n"), 5<<10/66)
	for _, lockStep := range []bool{false, true} {
		b.Run(map[bool]string{false: "pipelined", true: "lockstep"}[lockStep], func(b *testing.B) {
			srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) {
				return discard{}, nil
			}))
			srv.Domain, srv.ErrorLog = "bench.test", log.New(io.Discard, "", 0)
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			go srv.Serve(l)
			defer srv.Close()
			target := Target{Host: "bench.test", Addr: netip.MustParseAddrPort(l.Addr().String())}
			c, err := Dial(context.Background(), []Target{target}, testOpts())
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			c.lockStep = lockStep
			tx := Tx{From: "sender@example.org", Rcpts: []Rcpt{{Addr: "a@x.test"}}, Size: int64(len(body))}
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				tx.Body = bytes.NewReader(body)
				got, err := c.Deliver(context.Background(), tx)
				if err != nil || got[0].Code != 250 {
					b.Fatalf("Deliver = %v, %v", got, err)
				}
			}
		})
	}
}

type discard struct{}

func (discard) Mail(string, *smtp.MailOptions) error { return nil }
func (discard) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (discard) Data(r io.Reader) error               { _, err := io.Copy(io.Discard, r); return err }
func (discard) Reset()                               {}
func (discard) Logout() error                        { return nil }

// A refused RSET, sent in front of the next MAIL, leaves the replies
// after it in doubt: the connection is closed and the transaction gets
// a temporary failure.
func TestPipelinedRSETRefused(t *testing.T) {
	ps := newPipeServer(t, true, pipeRepliesWith(map[string]string{"RSET": "500 5.5.1 no\r\n"}))
	c := dialT(t, pipeOpts(), ps.target)
	if _, err := c.Deliver(context.Background(), newTx("no@x.test")); err != nil {
		t.Fatal(err)
	}
	got, err := c.Deliver(context.Background(), newTx("a@x.test"))
	if err == nil || c.Alive() || len(got) != 1 || !got[0].Temporary() {
		t.Errorf("after a refused RSET: replies %v, err %v, alive %v; want a temporary failure and a closed connection", got, err, c.Alive())
	}
}
