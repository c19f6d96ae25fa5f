package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// parseDuration accepts Go durations plus "d" for days ("5d", "1d12h").
func parseDuration(key, s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, fmt.Errorf("%s: empty duration", key)
	}
	var days time.Duration
	if i := strings.IndexByte(s, 'd'); i > 0 {
		n, err := strconv.Atoi(s[:i])
		if err != nil {
			return 0, fmt.Errorf("%s: bad duration %q", key, s)
		}
		days = time.Duration(n) * 24 * time.Hour
		s = s[i+1:]
		if s == "" {
			return days, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%s: bad duration %q (want e.g. \"30s\", \"5m\", \"2h\", \"5d\")", key, s)
	}
	if d+days <= 0 {
		return 0, fmt.Errorf("%s: duration must be positive, got %q", key, s)
	}
	return d + days, nil
}

// parseDurations parses a list, naming the index of a bad entry.
func parseDurations(key string, in []string) ([]time.Duration, error) {
	out := make([]time.Duration, 0, len(in))
	for i, s := range in {
		d, err := parseDuration(fmt.Sprintf("%s[%d]", key, i), s)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

// parseSize accepts a byte count with an optional unit: "50MB", "512KB",
// "1GB", "1024" (powers of 1024, as operators expect of mail sizes).
func parseSize(key, s string) (int64, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"GB", 1 << 30}, {"MB", 1 << 20}, {"KB", 1 << 10}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}, {"B", 1}} {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%s: bad size %q (want e.g. \"50MB\", \"512KB\")", key, s)
	}
	return n * mult, nil
}

func durationOr(key, s string, def time.Duration) (time.Duration, error) {
	if s == "" {
		return def, nil
	}
	return parseDuration(key, s)
}

func intOr(key string, p *int, def, min int) (int, error) {
	if p == nil {
		return def, nil
	}
	if *p < min {
		return 0, fmt.Errorf("%s: must be at least %d, got %d", key, min, *p)
	}
	return *p, nil
}
