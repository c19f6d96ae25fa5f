package submission

import (
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"golang.org/x/crypto/bcrypt"
)

// Replies to AUTH (RFC 4954 6). go-smtp writes an *smtp.SMTPError that
// the SASL exchange returns as it is: that is how the 235 gets its
// enhanced code 2.7.0, which go-smtp's own 235 lacks.
var (
	errAuthOK        = replyErr(235, 2, 7, 0, "Authentication successful")
	errAuthInvalid   = replyErr(535, 5, 7, 8, "Authentication credentials invalid")
	errAuthLocked    = replyErr(454, 4, 7, 0, "Too many authentication failures, try again later")
	errAuthNeedsTLS  = replyErr(538, 5, 7, 11, "Encryption required for requested authentication mechanism")
	errAuthTwice     = replyErr(503, 5, 5, 1, "Already authenticated")
	errAuthInTxn     = replyErr(503, 5, 5, 1, "AUTH not permitted during a mail transaction")
	errAuthMalformed = replyErr(501, 5, 5, 2, "Malformed authentication response")
)

// maxPasswordLen is the longest password bcrypt looks at whole; a longer
// one never authenticates (bcrypt would ignore its tail).
const maxPasswordLen = 72

// ValidateUsers checks Config.Users: every name is non-empty and every
// hash is bcrypt or argon2id (PHC string). The error names the first user
// at fault, never a hash.
func ValidateUsers(users map[string]string) error {
	for name, hash := range users {
		if err := checkUser(name, hash); err != nil {
			return err
		}
	}
	return nil
}

func checkUser(name, hash string) error {
	if name == "" {
		return errors.New("submission: user with an empty name")
	}
	if err := CheckPasswordHash(hash); err != nil {
		return fmt.Errorf("submission: user %q: %w", name, err)
	}
	return nil
}

// CheckPasswordHash reports whether hash is a password hash AUTH can
// check: bcrypt, or argon2id in the PHC string format within sane
// parameters. Its errors never quote the hash.
func CheckPasswordHash(hash string) error {
	if isArgon2id(hash) {
		_, err := parseArgon2id(hash)
		return err
	}
	if _, err := bcrypt.Cost([]byte(hash)); err != nil {
		return errors.New("password hash is not bcrypt, nor argon2id")
	}
	return nil
}

// authenticator checks AUTH credentials; a Server has one when some user
// may authenticate. It is not changed after New.
type authenticator struct {
	users atomic.Pointer[userSet] // replaced whole by a reload; nil: no user
	delay time.Duration           // Config.AuthFailDelay
	lock  *lockout
}

// userSet is the users who may authenticate.
type userSet struct {
	hashes map[string][]byte // name -> bcrypt or argon2id hash, checked by checkUser
	// dummy is a hash, like the costliest of the users' (argon2id when
	// any user has one, else bcrypt at the highest cost), that an unknown
	// user's password is checked against, so that the time taken does
	// not tell whether a user exists.
	dummy []byte
}

// newAuthenticator returns cfg's authenticator. Users that checkUser
// refuses are logged and left out.
func newAuthenticator(cfg Config, log *slog.Logger) *authenticator {
	a := &authenticator{delay: cfg.AuthFailDelay, lock: newLockout(cfg.AuthLockout, maxLockoutClients)}
	a.setUsers(cfg.Users, log)
	return a
}

// setUsers puts users in force; AUTH is offered only while there is one.
// Lock-outs in force stay.
func (a *authenticator) setUsers(users map[string]string, log *slog.Logger) {
	set := &userSet{hashes: make(map[string][]byte, len(users))}
	cost := bcrypt.MinCost
	var costliest *argon2idHash
	for name, hash := range users {
		if err := checkUser(name, hash); err != nil {
			log.Error("user left out: it cannot authenticate", "error", err)
			continue
		}
		set.hashes[name] = []byte(hash)
		if h, err := parseArgon2id(hash); err == nil {
			if costliest == nil || uint64(h.memory)*uint64(h.time) > uint64(costliest.memory)*uint64(costliest.time) {
				costliest = h
			}
			continue
		}
		c, _ := bcrypt.Cost([]byte(hash))
		cost = max(cost, c)
	}
	if len(set.hashes) == 0 {
		a.users.Store(nil)
		return
	}
	if costliest != nil {
		set.dummy = []byte(costliest.dummy())
	} else {
		set.dummy = dummyHash(cost)
	}
	a.users.Store(set)
}

// enabled reports whether some user may authenticate.
func (a *authenticator) enabled() bool { return a.users.Load() != nil }

// dummyHash is the bcrypt hash of a random password at cost.
func dummyHash(cost int) []byte {
	h, err := bcrypt.GenerateFromPassword([]byte(rand.Text()), cost)
	if err != nil {
		// Cannot happen: cost is that of a valid hash, and the
		// password is shorter than 72 bytes.
		panic(fmt.Sprintf("submission: bcrypt: %v", err))
	}
	return h
}

// verify reports whether pass is user's password. It hashes pass whether
// or not user exists, and both kinds of hash compare in constant time.
func (a *authenticator) verify(user, pass string) bool {
	set := a.users.Load()
	if set == nil {
		return false
	}
	hash, known := set.hashes[user]
	if !known {
		hash = set.dummy
	}
	if isArgon2id(string(hash)) {
		h, err := parseArgon2id(string(hash)) // checked when the users were set
		if err != nil || len(pass) > maxArgon2Pass {
			return false
		}
		return h.matches(pass) && known
	}
	ok := bcrypt.CompareHashAndPassword(hash, []byte(pass)) == nil
	return ok && known && len(pass) <= maxPasswordLen
}

var _ smtp.AuthSession = (*session)(nil)

// AuthMechanisms is what EHLO offers: PLAIN and LOGIN on a TLS session of
// a Server with users, nothing otherwise.
func (s *session) AuthMechanisms() []string {
	if !s.srv.auth.enabled() || !s.overTLS {
		return nil
	}
	return []string{sasl.Plain, sasl.Login}
}

// Auth starts an AUTH exchange with mech (upper case). go-smtp calls it
// on the connection's goroutine, after it checked that the client said
// EHLO and named a mechanism, and answers an *smtp.SMTPError it returns.
func (s *session) Auth(mech string) (sasl.Server, error) {
	if err := s.mayAuth(); err != nil {
		return nil, err
	}
	switch mech {
	case sasl.Plain:
		return saslServer{sasl.NewPlainServer(func(identity, user, pass string) error {
			return s.login(mech, identity, user, pass)
		})}, nil
	case sasl.Login:
		return &loginServer{check: func(user, pass string) error {
			return s.login(mech, "", user, pass)
		}}, nil
	}
	return nil, smtp.ErrAuthUnknownMechanism
}

// mayAuth is nil when AUTH may start now, else the reply to it.
func (s *session) mayAuth() error {
	switch {
	case !s.srv.auth.enabled():
		return smtp.ErrAuthUnsupported
	case !s.overTLS:
		return errAuthNeedsTLS // RFC 4954 6: PLAIN and LOGIN only under TLS
	case s.authenticated != "":
		return errAuthTwice // RFC 4954 4; go-smtp never sees our 235
	case s.open():
		return errAuthInTxn // RFC 4954 4
	}
	return s.checkLocked()
}

// checkLocked is errAuthLocked when the client is locked out.
func (s *session) checkLocked() error {
	if !s.srv.auth.lock.locked(lockoutKey(s.ip), time.Now()) {
		return nil
	}
	s.log.Info("auth refused: too many failures")
	return errAuthLocked
}

// login checks the credentials of an AUTH exchange and returns its reply:
// 235 with the session authenticated as user, 454 when the client was
// locked out meanwhile, or 535 after AuthFailDelay. identity is PLAIN's
// authorization identity: only user's own (or none) is accepted. Runs on
// the connection's goroutine.
func (s *session) login(mech, identity, user, pass string) error {
	if err := s.checkLocked(); err != nil {
		return err
	}
	a := s.srv.auth
	if a.verify(user, pass) && (identity == "" || identity == user) {
		s.authenticated = user
		s.log.Info("auth succeeded", "user", user, "mechanism", mech)
		return errAuthOK
	}
	locked := a.lock.fail(lockoutKey(s.ip), time.Now())
	s.log.Info("auth failed", "user", user, "mechanism", mech, "locked_out", locked)
	s.pause(a.delay)
	return errAuthInvalid
}

// pause waits d, or until the connection is closed (by Shutdown). It holds
// no lock.
func (s *session) pause(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-s.tc.closed():
	}
}

// saslServer answers a malformed response 501 5.5.2 rather than with the
// library's error text.
type saslServer struct{ sasl.Server }

func (w saslServer) Next(response []byte) ([]byte, bool, error) {
	challenge, done, err := w.Server.Next(response)
	if err == nil {
		return challenge, done, nil
	}
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return nil, false, se // go-smtp asserts the type: never wrapped
	}
	return nil, false, errAuthMalformed
}

// loginServer is the server side of LOGIN (draft-murchison-sasl-login):
// "Username:", "Password:", each answered in base64, the user name
// possibly as the initial response. go-sasl has only its client side.
type loginServer struct {
	check func(user, pass string) error
	user  string
	state int // how far the exchange went: loginStart to loginDone
}

const (
	loginStart = iota
	loginUser
	loginPass
	loginDone
)

func (l *loginServer) Next(response []byte) ([]byte, bool, error) {
	switch {
	case l.state == loginStart && response == nil:
		l.state = loginUser
		return []byte("Username:"), false, nil
	case l.state == loginStart || l.state == loginUser:
		l.user, l.state = string(response), loginPass
		return []byte("Password:"), false, nil
	case l.state == loginPass:
		l.state = loginDone
		return nil, true, l.check(l.user, string(response))
	}
	return nil, false, errAuthMalformed
}
