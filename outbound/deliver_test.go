package outbound

import (
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mtad/mtad/messages"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

const testBody = "Subject: test\r\n\r\nhello\r\n"

func testOpts() Options {
	d := 5 * time.Second
	return Options{Hostname: "client.test",
		Timeouts: Timeouts{Connect: d, Greeting: d, EHLO: d, MailFrom: d, RcptTo: d, Data: d}}
}

func dialT(t *testing.T, opts Options, targets ...Target) *Conn {
	t.Helper()
	c, err := Dial(context.Background(), targets, opts)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func newTx(rcpts ...string) Tx {
	tx := Tx{From: "sender@example.org", Body: strings.NewReader(testBody), Size: int64(len(testBody))}
	for _, r := range rcpts {
		tx.Rcpts = append(tx.Rcpts, Rcpt{Addr: r})
	}
	return tx
}

// want is the part of a reply a test checks.
type want struct {
	code     int
	enhanced string
	class    string
}

func checkReplies(t *testing.T, got []messages.Reply, want []want) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d replies, want %d: %v", len(got), len(want), got)
	}
	for i, w := range want {
		g := got[i]
		if g.Code != w.code || g.Enhanced != w.enhanced || g.Class != w.class {
			t.Errorf("reply %d = %d %q class %q (%q), want %d %q class %q",
				i, g.Code, g.Enhanced, g.Class, g.Text, w.code, w.enhanced, w.class)
		}
	}
}

var (
	ok250 = want{250, "2.0.0", ""}
	e451  = smtpErr(451, smtp.EnhancedCode{4, 2, 1}, "try later")
	e550  = smtpErr(550, smtp.EnhancedCode{5, 1, 1}, "no such user")
)

func TestDeliver(t *testing.T) {
	tests := []struct {
		name     string
		setup    func(*smtp.Server)
		script   func(*sink)
		tx       Tx
		want     []want
		mails    int      // MAIL commands the sink saw
		received []string // accepted recipients the body was sent for
	}{{
		name:     "per-recipient RCPT replies",
		script:   func(s *sink) { s.rcptErr["b@x.test"], s.rcptErr["c@x.test"] = e451, e550 },
		tx:       newTx("a@x.test", "b@x.test", "c@x.test"),
		want:     []want{ok250, {451, "4.2.1", "rcpt"}, {550, "5.1.1", "rcpt"}},
		mails:    1,
		received: []string{"a@x.test"},
	}, {
		name:   "MAIL rejection applies to all",
		script: func(s *sink) { s.mailErr = smtpErr(550, smtp.EnhancedCode{5, 7, 1}, "go away") },
		tx:     newTx("a@x.test", "b@x.test"),
		want:   []want{{550, "5.7.1", "mail"}, {550, "5.7.1", "mail"}},
		mails:  1,
	}, {
		name:   "no accepted recipient, no DATA",
		script: func(s *sink) { s.rcptErr["a@x.test"], s.rcptErr["b@x.test"] = e550, e451 },
		tx:     newTx("a@x.test", "b@x.test"),
		want:   []want{{550, "5.1.1", "rcpt"}, {451, "4.2.1", "rcpt"}},
		mails:  1,
	}, {
		name: "DATA 4xx applies to accepted ones",
		script: func(s *sink) {
			s.rcptErr["c@x.test"] = e550
			s.dataErr = smtpErr(452, smtp.EnhancedCode{4, 3, 1}, "disk full")
		},
		tx:       newTx("a@x.test", "b@x.test", "c@x.test"),
		want:     []want{{452, "4.3.1", "data"}, {452, "4.3.1", "data"}, {550, "5.1.1", "rcpt"}},
		mails:    1,
		received: []string{"a@x.test", "b@x.test"},
	}, {
		name:  "SIZE over the advertised maximum",
		setup: func(s *smtp.Server) { s.MaxMessageBytes = 100 },
		tx:    func() Tx { tx := newTx("a@x.test", "b@x.test"); tx.Size = 1000; return tx }(),
		want:  []want{{552, "5.3.4", "size"}, {552, "5.3.4", "size"}},
	}, {
		name: "binary body is refused",
		tx:   func() Tx { tx := newTx("a@x.test"); tx.BodyType = messages.BodyBinaryMIME; return tx }(),
		want: []want{{554, "5.6.3", "unsupported"}},
	}, {
		name:     "bad recipient address is not sent",
		tx:       newTx("a@x.test", "b@x.test\r\nDATA"),
		want:     []want{ok250, {553, "5.1.3", "address"}},
		mails:    1,
		received: []string{"a@x.test"},
	}}
	for _, tt := range tests {
		forBothModes(t, tt.name, func(t *testing.T, lockStep bool) {
			s := newSink(t, tt.setup)
			if tt.script != nil {
				s.script(tt.script)
			}
			c := dialT(t, testOpts(), s.target)
			c.lockStep = lockStep
			tx := tt.tx
			tx.Body = strings.NewReader(testBody) // a body is read once: each mode gets its own
			got, err := c.Deliver(context.Background(), tx)
			if err != nil {
				t.Fatalf("Deliver: %v", err)
			}
			checkReplies(t, got, tt.want)
			txs := s.transactions()
			if len(txs) != tt.mails {
				t.Fatalf("sink saw %d MAIL, want %d", len(txs), tt.mails)
			}
			if len(txs) == 1 && !slices.Equal(received(txs[0]), tt.received) {
				t.Errorf("body taken for %v, want %v", received(txs[0]), tt.received)
			}
			checkNextClean(t, s, c)
		})
	}
}

// forBothModes runs f pipelined (the go-smtp sink offers PIPELINING) and
// lock-step.
func forBothModes(t *testing.T, name string, f func(t *testing.T, lockStep bool)) {
	t.Run(name+"/pipelined", func(t *testing.T) { f(t, false) })
	t.Run(name+"/lockstep", func(t *testing.T) { f(t, true) })
}

func received(tx sinkTx) []string {
	if !tx.Data {
		return nil
	}
	return tx.accepted
}

// checkNextClean delivers one more transaction on c, with the sink
// accepting everything, and checks it arrived alone and whole.
func checkNextClean(t *testing.T, s *sink, c *Conn) {
	t.Helper()
	if !c.Alive() {
		t.Fatal("connection died")
	}
	s.script(func(s *sink) {
		s.mailErr, s.dataErr, s.dropData = nil, nil, false
		s.rcptErr, s.lmtpErr = map[string]error{}, map[string]error{}
	})
	n := len(s.transactions())
	got, err := c.Deliver(context.Background(), newTx("next@x.test"))
	if err != nil {
		t.Fatalf("next Deliver: %v", err)
	}
	checkReplies(t, got, []want{ok250})
	txs := s.transactions()
	if len(txs) != n+1 {
		t.Fatalf("sink saw %d transactions, want %d", len(txs), n+1)
	}
	last := txs[n]
	if !slices.Equal(last.Rcpts, []string{"next@x.test"}) || string(last.Body) != testBody {
		t.Errorf("next transaction = %+v", last)
	}
	if s.sessionCount() != 1 {
		t.Errorf("sink saw %d sessions, want 1", s.sessionCount())
	}
}

func TestTwoTransactionsOneConnection(t *testing.T) {
	s := newSink(t, nil)
	c := dialT(t, testOpts(), s.target)
	for _, rcpt := range []string{"one@x.test", "two@x.test"} {
		got, err := c.Deliver(context.Background(), newTx(rcpt))
		if err != nil {
			t.Fatal(err)
		}
		checkReplies(t, got, []want{ok250})
	}
	txs := s.transactions()
	if len(txs) != 2 || s.sessionCount() != 1 {
		t.Fatalf("sink saw %d transactions in %d sessions, want 2 in 1", len(txs), s.sessionCount())
	}
	for i, rcpt := range []string{"one@x.test", "two@x.test"} {
		if !slices.Equal(txs[i].Rcpts, []string{rcpt}) || string(txs[i].Body) != testBody {
			t.Errorf("transaction %d = %+v", i, txs[i])
		}
	}
}

func TestDSNParameters(t *testing.T) {
	tx := newTx("a@x.test", "b@x.test")
	tx.Ret, tx.EnvID = messages.RetHdrs, "env-1"
	tx.Rcpts[0].Notify = messages.NotifyFailure | messages.NotifyDelay
	tx.Rcpts[0].ORcpt = "rfc822;orig@x.test"
	tx.Rcpts[1].Notify = messages.NotifyNever
	for _, dsn := range []bool{true, false} {
		t.Run(map[bool]string{true: "advertised", false: "not advertised"}[dsn], func(t *testing.T) {
			s := newSink(t, func(srv *smtp.Server) { srv.EnableDSN = dsn })
			c := dialT(t, testOpts(), s.target)
			tx.Body = strings.NewReader(testBody) // a body is read once
			if _, err := c.Deliver(context.Background(), tx); err != nil {
				t.Fatal(err)
			}
			got := s.transactions()[0]
			want := sinkTx{RcptOpts: make([]smtp.RcptOptions, 2)}
			if dsn {
				want.Mail = smtp.MailOptions{Return: smtp.DSNReturnHeaders, EnvelopeID: "env-1"}
				want.RcptOpts[0] = smtp.RcptOptions{
					Notify:                []smtp.DSNNotify{smtp.DSNNotifyFailure, smtp.DSNNotifyDelayed},
					OriginalRecipientType: smtp.DSNAddressTypeRFC822, OriginalRecipient: "orig@x.test"}
				want.RcptOpts[1] = smtp.RcptOptions{Notify: []smtp.DSNNotify{smtp.DSNNotifyNever}}
			}
			if got.Mail.Return != want.Mail.Return || got.Mail.EnvelopeID != want.Mail.EnvelopeID {
				t.Errorf("MAIL options = %+v, want RET %q ENVID %q", got.Mail, want.Mail.Return, want.Mail.EnvelopeID)
			}
			if got.Mail.Size != int64(len(testBody)) || got.Mail.Body != smtp.Body8BitMIME {
				t.Errorf("MAIL SIZE=%d BODY=%s, want %d and 8BITMIME", got.Mail.Size, got.Mail.Body, len(testBody))
			}
			for i := range want.RcptOpts {
				g, w := got.RcptOpts[i], want.RcptOpts[i]
				if !slices.Equal(g.Notify, w.Notify) || g.OriginalRecipientType != w.OriginalRecipientType ||
					g.OriginalRecipient != w.OriginalRecipient {
					t.Errorf("RCPT %d options = %+v, want %+v", i, g, w)
				}
			}
		})
	}
}

func TestLMTP(t *testing.T) {
	forBothModes(t, "lmtp", testLMTP)
}

func testLMTP(t *testing.T, lockStep bool) {
	s := newSink(t, func(srv *smtp.Server) { srv.LMTP = true })
	s.script(func(s *sink) {
		s.rcptErr["d@x.test"] = e550
		s.lmtpErr["b@x.test"] = smtpErr(452, smtp.EnhancedCode{4, 2, 2}, "mailbox full")
		s.lmtpErr["c@x.test"] = smtpErr(550, smtp.EnhancedCode{5, 2, 1}, "mailbox disabled")
	})
	opts := testOpts()
	opts.LMTP = true
	c := dialT(t, opts, s.target)
	c.lockStep = lockStep
	got, err := c.Deliver(context.Background(), newTx("a@x.test", "b@x.test", "c@x.test", "d@x.test"))
	if err != nil {
		t.Fatal(err)
	}
	checkReplies(t, got, []want{ok250, {452, "4.2.2", "data"}, {550, "5.2.1", "data"}, {550, "5.1.1", "rcpt"}})
	if !strings.Contains(got[2].Text, "mailbox disabled") {
		t.Errorf("reply text %q lacks the server's words", got[2].Text)
	}
	checkNextClean(t, s, c)
}

func TestBodyLineEnds(t *testing.T) {
	s := newSink(t, nil)
	c := dialT(t, testOpts(), s.target)
	tx := newTx("a@x.test")
	body := "Subject: dots\n\nline1\n.\nline3\r\n.\r\n..two\n."
	tx.Body, tx.Size = iotest.OneByteReader(strings.NewReader(body)), int64(len(body))
	if _, err := c.Deliver(context.Background(), tx); err != nil {
		t.Fatal(err)
	}
	txs := s.transactions()
	const want = "Subject: dots\r\n\r\nline1\r\n.\r\nline3\r\n.\r\n..two\r\n.\r\n"
	if len(txs) != 1 || string(txs[0].Body) != want {
		t.Fatalf("sink got %d transactions, body %q; want one with %q", len(txs), txs[0].Body, want)
	}
	checkNextClean(t, s, c)
}

func TestServerClosesMidData(t *testing.T) {
	s := newSink(t, nil)
	s.script(func(s *sink) { s.dropData, s.rcptErr["b@x.test"] = true, e550 })
	c := dialT(t, testOpts(), s.target)
	got, err := c.Deliver(context.Background(), newTx("a@x.test", "b@x.test"))
	var e *Error
	if !errors.As(err, &e) || !e.Temporary || e.Class != ClassConnection || e.Stage != StageData {
		t.Fatalf("Deliver error = %#v, want temporary connection error at data", err)
	}
	checkReplies(t, got, []want{{0, "", "connection"}, {550, "5.1.1", "rcpt"}})
	if c.Alive() {
		t.Error("connection still alive")
	}
	_, err = c.Deliver(context.Background(), newTx("a@x.test"))
	if !errors.Is(err, ErrClosed) {
		t.Errorf("Deliver on a dead connection = %v, want ErrClosed", err)
	}
}

func TestReply421ClosesConnection(t *testing.T) {
	s := newSink(t, nil)
	s.script(func(s *sink) { s.rcptErr["b@x.test"] = smtpErr(421, smtp.EnhancedCode{4, 3, 2}, "shutting down") })
	c := dialT(t, testOpts(), s.target)
	got, err := c.Deliver(context.Background(), newTx("a@x.test", "b@x.test", "c@x.test"))
	var e *Error
	if !errors.As(err, &e) || !e.Temporary || e.Code != 421 || e.Stage != StageRcpt {
		t.Fatalf("Deliver error = %v, want 421 at rcpt", err)
	}
	r421 := want{421, "4.3.2", "rcpt"}
	checkReplies(t, got, []want{r421, r421, r421})
	if c.Alive() {
		t.Error("connection still alive after 421")
	}
}

// A server that stops answering after MAIL: the MAIL deadline fires.
func TestTimeoutMidTransaction(t *testing.T) {
	rs := newRawServer(t, "220 raw.test ESMTP\r\n", func(cmd string) string {
		if strings.HasPrefix(cmd, "EHLO") {
			return "250-raw.test\r\n250 8BITMIME\r\n"
		}
		return ""
	})
	opts := testOpts()
	opts.Timeouts.MailFrom = 100 * time.Millisecond
	c := dialT(t, opts, rs.target)
	got, err := c.Deliver(context.Background(), newTx("a@x.test", "b@x.test"))
	var e *Error
	if !errors.As(err, &e) || !e.Temporary || e.Class != ClassTimeout || e.Stage != StageMail {
		t.Fatalf("Deliver error = %v, want a timeout at mail", err)
	}
	checkReplies(t, got, []want{{0, "", "timeout"}, {0, "", "timeout"}})
	if c.Alive() {
		t.Error("connection still alive after a timeout")
	}
}

func TestUnsupportedExtensions(t *testing.T) {
	rs := newRawServer(t, "220 raw.test ESMTP\r\n", func(cmd string) string {
		switch {
		case strings.HasPrefix(cmd, "EHLO"):
			return "250-raw.test\r\n250 SIZE\r\n"
		case cmd == "QUIT":
			return "221 bye\r\n"
		}
		return "250 ok\r\n"
	})
	tests := []struct {
		name string
		tx   func(Tx) Tx
		want want
	}{
		{"8bit body without 8BITMIME", func(tx Tx) Tx { tx.BodyType = messages.Body8BitMIME; return tx },
			want{554, "5.6.3", "unsupported"}},
		{"SMTPUTF8 flag without SMTPUTF8", func(tx Tx) Tx { tx.SMTPUTF8 = true; return tx },
			want{553, "5.6.7", "unsupported"}},
		{"UTF-8 address without SMTPUTF8", func(tx Tx) Tx { tx.Rcpts[0].Addr = "jörg@x.test"; return tx },
			want{553, "5.6.7", "unsupported"}},
	}
	c := dialT(t, testOpts(), rs.target)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := c.Deliver(context.Background(), tt.tx(newTx("a@x.test")))
			if err != nil {
				t.Fatal(err)
			}
			checkReplies(t, got, []want{tt.want})
		})
	}
	if cmds := rs.commands(); len(cmds) != 1 {
		t.Errorf("server saw %q, want only EHLO", cmds)
	}
}

// Transcripts as the server saw them, line ends shown as LF.
func TestTranscriptGolden(t *testing.T) {
	dsnTx := newTx("a@x.test", "b@x.test")
	dsnTx.Ret, dsnTx.EnvID = messages.RetHdrs, "id+1"
	dsnTx.Rcpts[1].Notify = messages.NotifySuccess | messages.NotifyFailure
	dsnTx.Rcpts[1].ORcpt = "rfc822;B@x.test"
	tests := []struct {
		name   string
		script func(*sink)
		txs    []Tx
	}{
		{"simple", nil, []Tx{dsnTx}},
		{"rejected-then-accepted", func(s *sink) { s.rcptErr["a@x.test"] = e550 },
			[]Tx{newTx("a@x.test"), newTx("b@x.test")}},
	}
	// The lock-step transcripts are those of go-smtp's client, which this
	// package used before it spoke the protocol itself. The go-smtp server
	// logs what it reads as it reads it, so a pipelined group shows as its
	// commands, then their replies.
	for _, tt := range tests {
		for _, mode := range []string{"", "-pipelined", "-chunked"} {
			name := tt.name + mode
			t.Run(name, func(t *testing.T) {
				s := newSink(t, func(srv *smtp.Server) { srv.EnableDSN = true })
				if tt.script != nil {
					s.script(tt.script)
				}
				opts := testOpts()
				opts.NoChunking = mode != "-chunked"
				c := dialT(t, opts, s.target)
				c.lockStep = mode == ""
				for _, tx := range tt.txs {
					tx.Body = strings.NewReader(testBody) // a body is read once
					if _, err := c.Deliver(context.Background(), tx); err != nil {
						t.Fatal(err)
					}
				}
				if err := c.Close(); err != nil {
					t.Fatal(err)
				}
				eventually(t, "the reply to QUIT", func() bool { return strings.Contains(s.debug.String(), "221 ") })
				checkGolden(t, name, strings.ReplaceAll(s.debug.String(), "\r\n", "\n"))
			})
		}
	}
}

func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("transcript differs from %s (run with -update to accept):\n%s", path, got)
	}
}

func TestDeliverCanceled(t *testing.T) {
	rs := newRawServer(t, "220 raw.test ESMTP\r\n", func(cmd string) string {
		if strings.HasPrefix(cmd, "EHLO") {
			return "250 raw.test\r\n"
		}
		return "" // never answers MAIL
	})
	c := dialT(t, testOpts(), rs.target)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	got, err := c.Deliver(ctx, newTx("a@x.test"))
	var e *Error
	if !errors.As(err, &e) || e.Class != ClassCanceled || !errors.Is(err, context.Canceled) {
		t.Fatalf("Deliver error = %v, want canceled", err)
	}
	if time.Since(start) > 2*time.Second {
		t.Errorf("Deliver took %v after cancel", time.Since(start))
	}
	checkReplies(t, got, []want{{0, "", "canceled"}})
	if c.Alive() {
		t.Error("connection still alive after cancel")
	}
}
