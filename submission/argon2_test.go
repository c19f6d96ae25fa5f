package submission

import (
	"encoding/base64"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/crypto/argon2"
)

// argon2idFor is the PHC string of pass with small test parameters.
func argon2idFor(pass string) string {
	salt := []byte("0123456789abcdef")
	key := argon2.IDKey([]byte(pass), salt, 1, 64, 1, 32)
	return fmt.Sprintf("$argon2id$v=19$m=64,t=1,p=1$%s$%s",
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key))
}

// argon2id users authenticate beside bcrypt ones; wrong passwords and
// unknown users do not; malformed hashes are refused by ValidateUsers with
// the user named and the hash not quoted.
func TestArgon2idUsers(t *testing.T) {
	cfg := Config{Users: map[string]string{"dora": argon2idFor("s3cret"), "bob": hashPassword(t, "hunter2")},
		AuthLockout: DefaultAuthLockout}
	if err := ValidateUsers(cfg.Users); err != nil {
		t.Fatal(err)
	}
	a := newAuthenticator(cfg, nil)
	if !isArgon2id(string(a.users.Load().dummy)) {
		t.Error("with an argon2id user, unknown users are not checked against an argon2id dummy")
	}
	for _, c := range []struct {
		user, pass string
		want       bool
	}{{"dora", "s3cret", true}, {"dora", "s3cre", false}, {"bob", "hunter2", true}, {"nobody", "s3cret", false}} {
		if got := a.verify(c.user, c.pass); got != c.want {
			t.Errorf("verify(%q, %q) = %v, want %v", c.user, c.pass, got, c.want)
		}
	}
	good := argon2idFor("x")
	for name, bad := range map[string]string{
		"version":   strings.Replace(good, "v=19", "v=16", 1),
		"params":    strings.Replace(good, "m=64,t=1,p=1", "m=64,t=1", 1),
		"memory":    strings.Replace(good, "m=64", "m=99999999", 1),
		"salt":      strings.Replace(good, "$MDEy", "$!!!!", 1),
		"fields":    good[:strings.LastIndexByte(good, '$')],
		"argon2i":   strings.Replace(good, "argon2id", "argon2i", 1),
		"gibberish": "$argon2id$nonsense",
	} {
		err := ValidateUsers(map[string]string{"eve": bad})
		if err == nil || !strings.Contains(err.Error(), `"eve"`) || strings.Contains(err.Error(), bad) {
			t.Errorf("%s: ValidateUsers = %v, want an error naming eve and not quoting the hash", name, err)
		}
	}
}

// AUTH PLAIN over STARTTLS with an argon2id user.
func TestAuthPlainArgon2id(t *testing.T) {
	pki := newTestPKI(t)
	cfg := authConfig(t, pki)
	cfg.Users["dora"] = argon2idFor("s3cret")
	h := start(t, cfg)
	c, _ := h.tlsSession(pki, "127.0.0.1")
	if r := c.cmd(plain("", "dora", "s3cret")); !strings.HasPrefix(r, "235 ") {
		t.Errorf("AUTH as an argon2id user: %q, want 235", r)
	}
	c2, _ := h.tlsSession(pki, "127.0.0.1")
	if r := c2.cmd(plain("", "dora", "wrong")); !strings.HasPrefix(r, "535 ") {
		t.Errorf("AUTH with a wrong password: %q, want 535", r)
	}
}
