package outbound

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

const (
	testUser = "relay-user"
	testPass = "s3cret pass"
)

// sinkAuth makes the sink offer mechs in AUTH, take testUser and testPass,
// and refuse MAIL before AUTH. used lists the mechanisms that succeeded,
// under the sink's lock.
type sinkAuth struct {
	mechs []string
	used  []string
}

// authSession is a sink session with AUTH (go-smtp's AuthSession). It
// runs on its connection's goroutine.
type authSession struct {
	*session
	a      *sinkAuth
	authed bool
}

var _ smtp.AuthSession = (*authSession)(nil)

func (as *authSession) AuthMechanisms() []string { return as.a.mechs }

func (as *authSession) Auth(mech string) (sasl.Server, error) {
	check := func(user, pass string) error {
		if user != testUser || pass != testPass {
			return smtp.ErrAuthFailed
		}
		as.authed = true
		as.s.mu.Lock()
		defer as.s.mu.Unlock()
		as.a.used = append(as.a.used, mech)
		return nil
	}
	switch mech {
	case sasl.Plain:
		return sasl.NewPlainServer(func(identity, user, pass string) error {
			if identity != "" {
				return smtp.ErrAuthFailed
			}
			return check(user, pass)
		}), nil
	case sasl.Login:
		return &loginServer{check: check}, nil
	}
	return nil, smtp.ErrAuthUnknownMechanism
}

func (as *authSession) Mail(from string, o *smtp.MailOptions) error {
	if !as.authed {
		return smtp.ErrAuthRequired
	}
	return as.session.Mail(from, o)
}

// loginServer is the server side of LOGIN, which go-sasl lacks: it asks
// "Username:", then "Password:".
type loginServer struct {
	check func(user, pass string) error
	step  int
	user  string
}

func (l *loginServer) Next(response []byte) ([]byte, bool, error) {
	l.step++
	switch l.step {
	case 1:
		if response != nil {
			return nil, false, errors.New("LOGIN takes no initial response here")
		}
		return []byte("Username:"), false, nil
	case 2:
		l.user = string(response)
		return []byte("Password:"), false, nil
	}
	return nil, true, l.check(l.user, string(response))
}

// authSink is a sink that offers mechs (none: no AUTH keyword).
func authSink(t *testing.T, mechs ...string) *sink {
	s := newSink(t, func(srv *smtp.Server) { srv.AllowInsecureAuth = true })
	s.script(func(s *sink) { s.auth = &sinkAuth{mechs: mechs} })
	return s
}

func (s *sink) authUsed() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.auth.used)
}

func authOpts(a Auth) Options {
	opts := testOpts()
	opts.Auth = &a
	return opts
}

func TestAuth(t *testing.T) {
	tests := []struct {
		name    string
		offered []string
		auth    Auth
		mech    string // used, on success
	}{
		{"PLAIN preferred", []string{"LOGIN", "PLAIN"}, Auth{Username: testUser, Password: testPass}, "PLAIN"},
		{"LOGIN when only LOGIN is offered", []string{"LOGIN"}, Auth{Username: testUser, Password: testPass}, "LOGIN"},
		{"LOGIN when only LOGIN is allowed", []string{"PLAIN", "LOGIN"},
			Auth{Username: testUser, Password: testPass, Mechanisms: []string{"login"}}, "LOGIN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := authSink(t, tt.offered...)
			c := dialT(t, authOpts(tt.auth), s.target)
			if c.AuthMechanism() != tt.mech || !slices.Equal(s.authUsed(), []string{tt.mech}) {
				t.Errorf("AuthMechanism() = %q, server saw %q; want %q", c.AuthMechanism(), s.authUsed(), tt.mech)
			}
			// A failed transaction (RSET, EHLO) leaves the session
			// authenticated, and AUTH is not sent again.
			s.script(func(s *sink) { s.rcptErr["no@x.test"] = e550 })
			got, err := c.Deliver(context.Background(), newTx("no@x.test"))
			if err != nil {
				t.Fatal(err)
			}
			checkReplies(t, got, []want{{550, "5.1.1", "rcpt"}})
			checkNextClean(t, s, c)
			if n := len(s.authUsed()); n != 1 {
				t.Errorf("server saw %d successful AUTH, want 1", n)
			}
		})
	}
}

func TestAuthFailure(t *testing.T) {
	tests := []struct {
		name     string
		offered  []string
		auth     Auth
		code     int
		enhanced string
		text     string // in the error text
	}{
		{"wrong password, PLAIN", []string{"PLAIN", "LOGIN"},
			Auth{Username: testUser, Password: "wrong-pass"}, 535, "5.7.8", "Authentication failed"},
		{"wrong password, LOGIN", []string{"LOGIN"},
			Auth{Username: testUser, Password: "wrong-pass"}, 535, "5.7.8", "Authentication failed"},
		{"no AUTH offered", nil,
			Auth{Username: testUser, Password: testPass}, 451, "4.7.0", "server does not offer AUTH; allowed here: PLAIN LOGIN"},
		{"no mechanism in common", []string{"LOGIN", "CRAM-MD5"},
			Auth{Username: testUser, Password: testPass, Mechanisms: []string{"PLAIN"}},
			451, "4.7.0", "server offers AUTH CRAM-MD5 LOGIN; allowed here: PLAIN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := authSink(t, tt.offered...)
			c, err := Dial(context.Background(), []Target{s.target}, authOpts(tt.auth))
			var e *Error
			if c != nil || !errors.As(err, &e) {
				t.Fatalf("Dial = %v, %v; want an *Error", c, err)
			}
			if !e.Temporary || e.Stage != StageAuth || e.Class != ClassAuth || e.Code != tt.code || e.Enhanced != tt.enhanced {
				t.Errorf("error = %+v, want temporary %d %s at auth, class auth", e, tt.code, tt.enhanced)
			}
			if r := e.Reply(); !r.Temporary() || r.Class != ClassAuth {
				t.Errorf("Reply() = %+v, want temporary, class auth", r)
			}
			if !strings.Contains(err.Error(), tt.text) {
				t.Errorf("error %q does not say %q", err, tt.text)
			}
			if tt.code == 451 && !errors.Is(err, ErrNoMechanism) {
				t.Errorf("error %v is not ErrNoMechanism", err)
			}
			checkNoSecret(t, err, tt.auth)
			if len(s.transactions()) != 0 {
				t.Error("a transaction was started")
			}
		})
	}
}

// checkNoSecret fails if a password, or what was sent for it, shows in the
// text of err, of its Reply, or of any error it wraps.
func checkNoSecret(t *testing.T, err error, a Auth) {
	t.Helper()
	b64 := base64.StdEncoding.EncodeToString
	secrets := []string{a.Password, b64([]byte(a.Password)), b64([]byte("\x00" + a.Username + "\x00" + a.Password))}
	texts := []string{fmt.Sprintf("%v %+v", err, err)}
	var e *Error
	if errors.As(err, &e) {
		texts = append(texts, e.Reply().Text, e.Message)
	}
	for u := err; u != nil; u = errors.Unwrap(u) {
		texts = append(texts, u.Error())
	}
	for _, text := range texts {
		for _, sec := range secrets {
			if strings.Contains(text, sec) {
				t.Errorf("error text %q contains the secret %q", text, sec)
			}
		}
	}
}

// A target that refuses our credentials is skipped like one that is down.
func TestAuthFailureFallsToNextTarget(t *testing.T) {
	bad := newRawServer(t, "220 raw.test ESMTP\r\n", func(cmd string) string {
		if strings.HasPrefix(cmd, "EHLO") {
			return "250-raw.test\r\n250 AUTH PLAIN\r\n"
		}
		return "535 5.7.8 no\r\n"
	})
	good := authSink(t, "PLAIN")
	c := dialT(t, authOpts(Auth{Username: testUser, Password: testPass}), bad.target, good.target)
	if c.Target() != good.target || c.AuthMechanism() != "PLAIN" {
		t.Errorf("connected to %v with %q, want %v with PLAIN", c.Target(), c.AuthMechanism(), good.target)
	}
}

// The AUTH exchange as a raw server reads it, with our reaction to its
// replies.
func TestAuthWire(t *testing.T) {
	const (
		plainIR   = "AHJlbGF5LXVzZXIAczNjcmV0IHBhc3M=" // base64("\x00relay-user\x00s3cret pass")
		loginUser = "cmVsYXktdXNlcg=="                 // base64("relay-user")
		loginPass = "czNjcmV0IHBhc3M="                 // base64("s3cret pass")
	)
	tests := []struct {
		name   string
		ehlo   string // the keyword lines of the EHLO reply
		mechs  []string
		answer func(cmd string) string // replies after EHLO
		cmds   []string                // commands after EHLO
		mech   string                  // used; "" when Dial fails
		class  string                  // of Dial's error
		code   int
	}{{
		name:   "PLAIN initial response",
		ehlo:   "250-PIPELINING\r\n250 AUTH PLAIN LOGIN\r\n",
		answer: func(string) string { return "235 2.7.0 ok\r\n" },
		cmds:   []string{"AUTH PLAIN " + plainIR},
		mech:   "PLAIN",
	}, {
		name:   "LOGIN prompts",
		ehlo:   "250 AUTH LOGIN\r\n",
		answer: loginAnswers(loginUser, loginPass),
		cmds:   []string{"AUTH LOGIN", loginUser, loginPass},
		mech:   "LOGIN",
	}, {
		name:   "old AUTH= form",
		ehlo:   "250 AUTH=login\r\n",
		answer: loginAnswers(loginUser, loginPass),
		cmds:   []string{"AUTH LOGIN", loginUser, loginPass},
		mech:   "LOGIN",
	}, {
		name:   "4xx is temporary",
		ehlo:   "250 AUTH PLAIN\r\n",
		answer: func(string) string { return "454 4.7.0 try later\r\n" },
		cmds:   []string{"AUTH PLAIN " + plainIR},
		class:  ClassAuth, code: 454,
	}, {
		name:   "538 is temporary",
		ehlo:   "250 AUTH PLAIN\r\n",
		answer: func(string) string { return "538 5.7.11 encryption required\r\n" },
		cmds:   []string{"AUTH PLAIN " + plainIR},
		class:  ClassAuth, code: 538,
	}, {
		name:   "server quotes PLAIN back",
		ehlo:   "250 AUTH PLAIN\r\n",
		answer: func(cmd string) string { return "535 5.7.8 bad credentials: " + cmd + " s3cret pass\r\n" },
		cmds:   []string{"AUTH PLAIN " + plainIR},
		class:  ClassAuth, code: 535,
	}, {
		name:  "server quotes LOGIN password back",
		ehlo:  "250 AUTH LOGIN\r\n",
		mechs: []string{"LOGIN"},
		answer: func(cmd string) string {
			if cmd == loginPass {
				return "501 5.5.2 cannot decode " + cmd + "\r\n"
			}
			return loginAnswers(loginUser, loginPass)(cmd)
		},
		cmds:  []string{"AUTH LOGIN", loginUser, loginPass},
		class: ClassAuth, code: 501,
	}, {
		name:   "unexpected 334 to PLAIN",
		ehlo:   "250 AUTH PLAIN\r\n",
		answer: func(string) string { return "334 \r\n" },
		cmds:   []string{"AUTH PLAIN " + plainIR},
		class:  ClassProtocol,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs := newRawServer(t, "220 raw.test ESMTP\r\n", func(cmd string) string {
				if strings.HasPrefix(cmd, "EHLO") {
					return "250-raw.test\r\n" + tt.ehlo
				}
				if cmd == "QUIT" {
					return "221 bye\r\n"
				}
				return tt.answer(cmd)
			})
			a := Auth{Username: testUser, Password: testPass, Mechanisms: tt.mechs}
			c, err := Dial(context.Background(), []Target{rs.target}, authOpts(a))
			if tt.mech != "" {
				if err != nil {
					t.Fatalf("Dial: %v", err)
				}
				defer c.Close()
				if c.AuthMechanism() != tt.mech {
					t.Errorf("AuthMechanism() = %q, want %q", c.AuthMechanism(), tt.mech)
				}
			} else {
				var e *Error
				if !errors.As(err, &e) || !e.Temporary || e.Stage != StageAuth || e.Class != tt.class || e.Code != tt.code {
					t.Fatalf("Dial error = %+v, want temporary %d at auth, class %s", err, tt.code, tt.class)
				}
				checkNoSecret(t, err, a)
			}
			got := rs.commands()
			if len(got) < 1+len(tt.cmds) || !slices.Equal(got[1:1+len(tt.cmds)], tt.cmds) {
				t.Errorf("server saw %q, want EHLO then %q", got, tt.cmds)
			}
		})
	}
}

// loginAnswers is a LOGIN server keyed on the lines it reads.
func loginAnswers(user, pass string) func(string) string {
	return func(cmd string) string {
		switch cmd {
		case "AUTH LOGIN":
			return "334 VXNlcm5hbWU6\r\n" // "Username:"
		case user:
			return "334 UGFzc3dvcmQ6\r\n" // "Password:"
		case pass:
			return "235 2.7.0 ok\r\n"
		}
		return "500 5.5.1 what\r\n"
	}
}

// The AUTH exchange has the EHLO deadline.
func TestAuthTimeout(t *testing.T) {
	rs := newRawServer(t, "220 raw.test ESMTP\r\n", func(cmd string) string {
		if strings.HasPrefix(cmd, "EHLO") {
			return "250-raw.test\r\n250 AUTH PLAIN\r\n"
		}
		return "" // never answers AUTH
	})
	opts := authOpts(Auth{Username: testUser, Password: testPass})
	opts.Timeouts.EHLO = 100 * time.Millisecond
	start := time.Now()
	_, err := Dial(context.Background(), []Target{rs.target}, opts)
	var e *Error
	if !errors.As(err, &e) || !e.Temporary || e.Stage != StageAuth || e.Class != ClassTimeout {
		t.Fatalf("Dial = %v, want a temporary timeout at auth", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Dial took %v", d)
	}
}

// An Auth no server could take fails before anything is dialed: the
// target is closed, so trying it would fail at connect.
func TestAuthBadConfig(t *testing.T) {
	for _, a := range []Auth{
		{Username: testUser, Password: testPass, Mechanisms: []string{"LOGIN", "CRAM-MD5"}},
		{Username: testUser, Password: "a\x00b"},
	} {
		_, err := Dial(context.Background(), []Target{closedTarget(t)}, authOpts(a))
		var e *Error
		if !errors.As(err, &e) || !e.Temporary || e.Stage != StageAuth || e.Class != ClassAuth {
			t.Errorf("Dial with %q = %v, want a temporary auth error", a.Mechanisms, err)
		}
		checkNoSecret(t, err, a)
	}
}

// Without Auth nothing changes: no AUTH is sent to a server that offers it.
func TestNoAuth(t *testing.T) {
	rs := newRawServer(t, "220 raw.test ESMTP\r\n", func(cmd string) string {
		if strings.HasPrefix(cmd, "EHLO") {
			return "250-raw.test\r\n250 AUTH PLAIN\r\n"
		}
		return "221 bye\r\n"
	})
	c := dialT(t, testOpts(), rs.target)
	if c.AuthMechanism() != "" || !slices.Equal(rs.commands(), []string{"EHLO client.test"}) {
		t.Errorf("AuthMechanism() = %q, server saw %q", c.AuthMechanism(), rs.commands())
	}
}
