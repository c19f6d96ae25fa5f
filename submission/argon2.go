package submission

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
)

// argon2idPrefix starts a password hash in the PHC string format of
// argon2id: $argon2id$v=19$m=<KiB>,t=<passes>,p=<lanes>$<salt>$<key>, salt
// and key in unpadded standard base64 (what `argon2` CLIs and most
// libraries write).
const argon2idPrefix = "$argon2id$"

// Bounds on an argon2id hash from the configuration, so that a mistyped
// one cannot make every AUTH take gigabytes or minutes.
const (
	argon2MaxMemory = 1 << 20 // KiB: 1 GiB
	argon2MaxTime   = 64
	maxArgon2Pass   = 1024 // longest password tried against argon2id
)

type argon2idHash struct {
	memory, time uint32
	threads      uint8
	salt, key    []byte
}

func isArgon2id(hash string) bool { return strings.HasPrefix(hash, argon2idPrefix) }

// parseArgon2id reads an argon2id PHC string; its errors never quote it.
func parseArgon2id(s string) (*argon2idHash, error) {
	parts := strings.Split(strings.TrimPrefix(s, argon2idPrefix), "$")
	if len(parts) != 4 {
		return nil, errors.New("argon2id hash: want $argon2id$v=19$m=..,t=..,p=..$salt$key")
	}
	if parts[0] != "v=19" {
		return nil, errors.New("argon2id hash: version is not v=19")
	}
	h := &argon2idHash{}
	var p uint32
	if _, err := fmt.Sscanf(parts[1], "m=%d,t=%d,p=%d", &h.memory, &h.time, &p); err != nil {
		return nil, errors.New("argon2id hash: parameters are not m=..,t=..,p=..")
	}
	if h.memory < 8 || h.memory > argon2MaxMemory || h.time < 1 || h.time > argon2MaxTime || p < 1 || p > 255 {
		return nil, fmt.Errorf("argon2id hash: parameters out of range (m 8..%d KiB, t 1..%d, p 1..255)", argon2MaxMemory, argon2MaxTime)
	}
	h.threads = uint8(p)
	var err error
	if h.salt, err = base64.RawStdEncoding.DecodeString(parts[2]); err != nil || len(h.salt) < 8 {
		return nil, errors.New("argon2id hash: salt is not base64 of at least 8 bytes")
	}
	if h.key, err = base64.RawStdEncoding.DecodeString(parts[3]); err != nil || len(h.key) < 16 || len(h.key) > 64 {
		return nil, errors.New("argon2id hash: key is not base64 of 16 to 64 bytes")
	}
	return h, nil
}

// matches reports, in constant time over the key, whether pass hashes to h.
func (h *argon2idHash) matches(pass string) bool {
	k := argon2.IDKey([]byte(pass), h.salt, h.time, h.memory, h.threads, uint32(len(h.key)))
	return subtle.ConstantTimeCompare(k, h.key) == 1
}

// dummy is an argon2id hash of a random password with h's parameters.
func (h *argon2idHash) dummy() string {
	salt := make([]byte, len(h.salt))
	rand.Read(salt)
	key := argon2.IDKey([]byte(rand.Text()), salt, h.time, h.memory, h.threads, uint32(len(h.key)))
	return fmt.Sprintf("%sv=19$m=%d,t=%d,p=%d$%s$%s", argon2idPrefix, h.memory, h.time, h.threads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key))
}
