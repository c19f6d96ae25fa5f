package submission

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mtad/mtad/messages"
)

// discardAcceptor takes every message and keeps nothing.
type discardAcceptor struct{ next atomic.Uint64 }

type discardBody struct{}

func (discardBody) Write(p []byte) (int, error) { return len(p), nil }
func (discardBody) Abort()                      {}

func (a *discardAcceptor) NextID() messages.MsgID                          { return messages.MsgID(a.next.Add(1)) }
func (a *discardAcceptor) NewBody(messages.MsgID) BodyWriter               { return discardBody{} }
func (a *discardAcceptor) AcceptBody(*messages.Envelope, BodyWriter) error { return nil }
func (a *discardAcceptor) Accept(*messages.Envelope, []byte) error         { return nil }

// BenchmarkData submits messages over loopback, one session, lock-step
// (MAIL, RCPT, DATA, body), read from the socket (capture) or through
// go-smtp's reader (gosmtp):
//
//	go test -run XXX -bench Data -count 6 ./submission
//
// Compare the two in the same run; the client's share of the time is in
// both.
func BenchmarkData(b *testing.B) {
	for _, size := range []int{5 << 10, 100 << 10} {
		for _, mode := range []string{"capture", "gosmtp"} {
			b.Run(fmt.Sprintf("%dKiB/%s", size>>10, mode), func(b *testing.B) {
				benchData(b, size, mode == "gosmtp")
			})
		}
	}
}

func benchData(b *testing.B, size int, slow bool) {
	cfg := testConfig()
	cfg.MaxMessageSize = 1 << 20
	srv := New(cfg, &discardAcceptor{}, nil)
	srv.slowData.Store(slow)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve(l)
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		srv.Shutdown(ctx)
	}()
	conn, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	reply := func() string {
		conn.SetReadDeadline(time.Now().Add(waitFor))
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				b.Fatalf("reading a reply: %v", err)
			}
			if len(line) < 4 || line[3] != '-' {
				return line
			}
		}
	}
	send := func(s string) {
		if _, err := io.WriteString(conn, s); err != nil {
			b.Fatal(err)
		}
	}
	line := strings.Repeat("x", 76) + "\r\n"
	body := []byte("Subject: bench\r\n\r\n" + strings.Repeat(line, size/len(line)) + ".\r\n")
	reply()
	send("EHLO client.test\r\n")
	reply()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		for _, cmd := range []string{"MAIL FROM:<a@sender.example>\r\n", "RCPT TO:<b@local.test>\r\n", "DATA\r\n"} {
			send(cmd)
			reply()
		}
		if _, err := conn.Write(body); err != nil {
			b.Fatal(err)
		}
		if r := reply(); !strings.HasPrefix(r, "250 ") {
			b.Fatalf("end of data: %q", r)
		}
	}
	if !slow && srv.captured.Load() == 0 {
		b.Fatal("no message was captured")
	}
}
