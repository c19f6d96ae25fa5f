package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// fakeMtadEnv makes the test binary behave as `mtad serve`, so the tests can
// run the harness's whole daemon life cycle without the real daemon. Its
// value picks the behaviour: "relay" accepts and relays, "blackhole"
// accepts and never relays, "crash" exits at once.
const fakeMtadEnv = "BENCH_FAKE_MTAD"

// Retry policy of the fake relay.
const (
	fakeAttempts   = 100
	fakeRetryPause = 10 * time.Millisecond
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(fakeMtadEnv); mode != "" {
		os.Exit(fakeMtad(mode, os.Args[1:]))
	}
	os.Exit(m.Run())
}

// fakeMtad parses mtad's serve flags and runs until SIGTERM.
func fakeMtad(mode string, args []string) int {
	if len(args) == 0 || args[0] != "serve" {
		return 2
	}
	fs := flag.NewFlagSet("mtad serve", flag.ContinueOnError)
	dataDir := fs.String("data-dir", "", "")
	listen := fs.String("listen", "", "")
	relay := fs.String("relay", "", "")
	fs.String("config", "", "")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	if mode == "crash" {
		fmt.Fprintln(os.Stderr, "fake mtad: cannot open journal")
		return 1
	}
	if err := os.WriteFile(filepath.Join(*dataDir, "journal"), nil, 0o600); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return fakeServe(*listen, &fakeRelay{relay: *relay, blackhole: mode == "blackhole"})
}

func fakeServe(listen string, r *fakeRelay) int {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	srv := smtp.NewServer(r)
	srv.Domain = "fake-mtad.test"
	srv.ErrorLog = log.New(io.Discard, "", 0)
	go srv.Serve(ln)
	<-sig
	srv.Close()
	r.wg.Wait() // bounded by fakeAttempts
	return 0
}

// fakeRelay accepts every message and relays each recipient on its own,
// retrying 4xx replies and dropping recipients refused with 5xx.
type fakeRelay struct {
	relay     string
	blackhole bool
	wg        sync.WaitGroup
}

func (r *fakeRelay) NewSession(*smtp.Conn) (smtp.Session, error) {
	return &fakeSession{r: r}, nil
}

type fakeSession struct {
	r     *fakeRelay
	from  string
	rcpts []string
}

func (s *fakeSession) Reset()        { s.from, s.rcpts = "", nil }
func (s *fakeSession) Logout() error { return nil }

func (s *fakeSession) Mail(from string, _ *smtp.MailOptions) error {
	s.from = from
	return nil
}

func (s *fakeSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.rcpts = append(s.rcpts, to)
	return nil
}

func (s *fakeSession) Data(r io.Reader) error {
	msg, err := io.ReadAll(r)
	if err != nil || s.r.blackhole {
		return err
	}
	from := s.from // the session is reused once Data returns
	for _, rcpt := range s.rcpts {
		s.r.wg.Go(func() { s.r.deliver(from, rcpt, msg) })
	}
	return nil
}

func (r *fakeRelay) deliver(from, rcpt string, msg []byte) {
	for range fakeAttempts {
		err := relayOnce(r.relay, from, rcpt, msg)
		var se *smtp.SMTPError
		if err == nil || (errors.As(err, &se) && !se.Temporary()) {
			return
		}
		time.Sleep(fakeRetryPause)
	}
}

func relayOnce(addr, from, rcpt string, msg []byte) error {
	c, err := smtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.SendMail(from, []string{rcpt}, bytes.NewReader(msg)); err != nil {
		return err
	}
	return c.Quit()
}
