package config

import (
	"strings"
	"testing"
)

// Users may have bcrypt or argon2id hashes; anything else is an error
// naming the key.
func TestAuthUserHashes(t *testing.T) {
	const argon = "$argon2id$v=19$m=64,t=1,p=1$MDEyMzQ1Njc4OWFiY2RlZg$8KfH4JrrCyeEm2BJvQTvslh8hM6oNXLSRwxSNz2f2uQ"
	if _, err := Parse("t.toml", []byte("[session.auth]\nusers = { \"dora\" = \""+argon+"\" }\n")); err != nil {
		t.Fatalf("argon2id user: %v", err)
	}
	_, err := Parse("t.toml", []byte("[session.auth]\nusers = { \"eve\" = \"plaintext\" }\n"))
	if err == nil || !strings.Contains(err.Error(), "session.auth.users.eve") || strings.Contains(err.Error(), "plaintext") {
		t.Fatalf("clear-text password: %v, want an error naming session.auth.users.eve, not quoting it", err)
	}
}
