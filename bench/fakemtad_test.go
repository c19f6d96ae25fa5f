package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/pelletier/go-toml/v2"
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

// fakeMtad parses mtad's serve flags and runs until SIGTERM; it also
// answers `config check FILE` for any TOML file.
func fakeMtad(mode string, args []string) int {
	if len(args) == 3 && args[0] == "config" && args[1] == "check" {
		return fakeConfigCheck(args[2])
	}
	if len(args) == 0 || args[0] != "serve" {
		return 2
	}
	fs := flag.NewFlagSet("mtad serve", flag.ContinueOnError)
	dataDir := fs.String("data-dir", "", "")
	listen := fs.String("listen", "", "")
	relay := fs.String("relay", "", "")
	conf := fs.String("config", "", "")
	pprofAddr := fs.String("pprof", "", "")
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
	r := &fakeRelay{relay: *relay, blackhole: mode == "blackhole"}
	if err := fakeHTTP(*conf, *pprofAddr, r); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return fakeServe(*listen, r)
}

// fakeConfigCheck accepts any file that parses as TOML.
func fakeConfigCheck(path string) int {
	b, err := os.ReadFile(path)
	if err == nil {
		err = toml.Unmarshal(b, new(map[string]any))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "fake mtad:", err)
		return 1
	}
	return 0
}

// fakeHTTP serves /metrics on the config's [server.management] bind (a
// journal gauge and the recipients held) and the Go profiler on pprofAddr.
func fakeHTTP(conf, pprofAddr string, r *fakeRelay) error {
	if pprofAddr != "" {
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		if err := fakeListen(pprofAddr, mux); err != nil {
			return err
		}
	}
	if conf == "" {
		return nil
	}
	var c struct {
		Server struct{ Management struct{ Bind string } }
	}
	b, err := os.ReadFile(conf)
	if err == nil {
		err = toml.Unmarshal(b, &c)
	}
	if err != nil || c.Server.Management.Bind == "" {
		return err
	}
	metrics := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "# TYPE mtad_journal_write_amplification gauge\nmtad_journal_write_amplification 1.5\n"+
			"# TYPE mtad_journal_fake_gauge gauge\nmtad_journal_fake_gauge{kind=\"a\"} 7\n"+
			"# TYPE mtad_queue_messages gauge\nmtad_queue_messages{queue=\"default\"} %d\n", r.held.Load())
	})
	mux := http.NewServeMux()
	mux.Handle("/metrics", metrics)
	return fakeListen(c.Server.Management.Bind, mux)
}

func fakeListen(addr string, h http.Handler) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	go http.Serve(ln, h) // until the process exits
	return nil
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
	held      atomic.Int64 // recipients not yet relayed or dropped
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
		s.r.held.Add(1)
		s.r.wg.Go(func() {
			defer s.r.held.Add(-1)
			s.r.deliver(from, rcpt, msg)
		})
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
