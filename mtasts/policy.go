package mtasts

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Mode is a policy's mode (RFC 8461 section 5).
type Mode string

// Modes of a policy.
const (
	ModeEnforce Mode = "enforce" // deliver only to matching MX hosts over verified TLS
	ModeTesting Mode = "testing" // report failures, deliver anyway
	ModeNone    Mode = "none"    // no policy: the domain opted out
)

const (
	version = "STSv1"
	// maxMaxAge is the largest max_age, in seconds (RFC 8461 section 3.2),
	// and so the longest a policy is cached: a year.
	maxMaxAge = 31557600
)

// ErrInvalidPolicy is wrapped by every error of Parse.
var ErrInvalidPolicy = errors.New("mtasts: invalid policy")

// Policy is a domain's MTA-STS policy.
type Policy struct {
	Version string   // always "STSv1"
	Mode    Mode     // one of the Mode constants
	MX      []string // patterns, lower case, no trailing dot: "mx.example.com" or "*.example.com"
	MaxAge  time.Duration
	ID      string    // the id of the TXT record it was fetched for
	Fetched time.Time // when it was fetched
}

// Expires returns when p stops being usable from a cache: MaxAge after it
// was fetched, at most a year.
func (p *Policy) Expires() time.Time {
	return p.Fetched.Add(min(p.MaxAge, maxMaxAge*time.Second))
}

// Parse parses a policy body (RFC 8461 section 3.2): "key: value" lines
// ended by LF or CRLF. version (STSv1), mode and max_age are required once
// each; mx at least once unless mode is none. Unknown keys are ignored;
// keys and values are case-sensitive, blanks around them and empty lines
// are ignored. ID and Fetched are left for the caller.
func Parse(body []byte) (*Policy, error) {
	p := &Policy{}
	seen := make(map[string]bool)
	for i, line := range strings.Split(string(body), "\n") {
		line = strings.TrimSuffix(line, "\r")
		if strings.Trim(line, " \t") == "" {
			continue
		}
		if err := p.set(line, seen); err != nil {
			return nil, fmt.Errorf("%w: line %d: %w", ErrInvalidPolicy, i+1, err)
		}
	}
	if err := p.check(seen); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidPolicy, err)
	}
	return p, nil
}

// set records the field of one line in p.
func (p *Policy) set(line string, seen map[string]bool) error {
	key, value, ok := strings.Cut(line, ":")
	if !ok {
		return fmt.Errorf("%q has no ':'", truncate(line))
	}
	key, value = strings.Trim(key, " \t"), strings.Trim(value, " \t")
	switch key {
	case "version", "mode", "max_age":
		if seen[key] {
			return fmt.Errorf("%s given twice", key)
		}
		seen[key] = true
	case "mx":
	default:
		return nil // section 3.2: unknown fields are ignored
	}
	return p.setField(key, value)
}

func (p *Policy) setField(key, value string) error {
	switch key {
	case "version":
		if value != version {
			return fmt.Errorf("version %q is not %s", truncate(value), version)
		}
		p.Version = value
	case "mode":
		switch m := Mode(value); m {
		case ModeEnforce, ModeTesting, ModeNone:
			p.Mode = m
		default:
			return fmt.Errorf("mode %q is not enforce, testing or none", truncate(value))
		}
	case "max_age":
		secs, err := parseMaxAge(value)
		if err != nil {
			return err
		}
		p.MaxAge = time.Duration(secs) * time.Second
	case "mx":
		pattern, err := parsePattern(value)
		if err != nil {
			return err
		}
		p.MX = append(p.MX, pattern)
	}
	return nil
}

// check reports a required field that is missing.
func (p *Policy) check(seen map[string]bool) error {
	for _, key := range []string{"version", "mode", "max_age"} {
		if !seen[key] {
			return fmt.Errorf("no %s", key)
		}
	}
	if p.Mode != ModeNone && len(p.MX) == 0 {
		return fmt.Errorf("no mx under mode %s", p.Mode)
	}
	return nil
}

// parseMaxAge parses 1*10DIGIT in 0..31557600 (section 3.2).
func parseMaxAge(s string) (int, error) {
	if s == "" || len(s) > 10 || strings.Trim(s, "0123456789") != "" {
		return 0, fmt.Errorf("max_age %q is not a number of seconds", truncate(s))
	}
	n, err := strconv.Atoi(s)
	if err != nil || n > maxMaxAge {
		return 0, fmt.Errorf("max_age %s is more than %d", s, maxMaxAge)
	}
	return n, nil
}

// parsePattern parses an mx value, ["*."] Domain (section 3.2), and
// returns it lower case without a trailing dot.
func parsePattern(s string) (string, error) {
	pattern := strings.ToLower(strings.TrimSuffix(s, "."))
	if !validName(strings.TrimPrefix(pattern, "*.")) {
		return "", fmt.Errorf("mx %q is not a host name or *. and a domain", truncate(s))
	}
	return pattern, nil
}

// validName reports whether s is a plausible lower-case domain name:
// labels of 1 to 63 letters, digits, '-' or '_', 253 bytes at most.
func validName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' && c != '_' {
				return false
			}
		}
	}
	return true
}

// Matches reports whether mxHost is allowed by p's mx patterns (RFC 8461
// section 4.1): equal to a pattern, or, for "*.example.com", one label
// followed by ".example.com". Case and a trailing dot do not matter.
func (p *Policy) Matches(mxHost string) bool {
	host := strings.ToLower(strings.TrimSuffix(mxHost, "."))
	if host == "" {
		return false
	}
	for _, pattern := range p.MX {
		if matchPattern(strings.ToLower(strings.TrimSuffix(pattern, ".")), host) {
			return true
		}
	}
	return false
}

func matchPattern(pattern, host string) bool {
	suffix, wildcard := strings.CutPrefix(pattern, "*.")
	if !wildcard {
		return host == pattern
	}
	label, rest, ok := strings.Cut(host, ".")
	return ok && label != "" && rest == suffix
}

// truncate bounds text from the network quoted in an error.
func truncate(s string) string {
	const limit = 64
	if len(s) > limit {
		return s[:limit] + "..."
	}
	return s
}
