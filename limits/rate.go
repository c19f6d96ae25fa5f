package limits

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"golang.org/x/time/rate"
)

// Rate is N events per Per. The zero Rate is no limit at all.
type Rate struct {
	N   int
	Per time.Duration
}

const day = 24 * time.Hour

// ParseRate parses "N/period": a positive count, a slash and a positive
// period written as a Go duration, with "d" for days ("50/1s", "10/1m",
// "1000/1h", "5000/1d", "100/90s"); a bare unit means one of it ("10/m").
// The error says what is wrong; the caller adds the configuration key.
func ParseRate(s string) (Rate, error) {
	n, per, ok := strings.Cut(strings.TrimSpace(s), "/")
	if !ok {
		return Rate{}, fmt.Errorf("rate %q: missing \"/\" (want e.g. \"50/1s\")", s)
	}
	count, err := parseCount(strings.TrimSpace(n))
	if err != nil {
		return Rate{}, fmt.Errorf("rate %q: %w", s, err)
	}
	d, err := parsePeriod(strings.TrimSpace(per))
	if err != nil {
		return Rate{}, fmt.Errorf("rate %q: %w", s, err)
	}
	return Rate{N: count, Per: d}, nil
}

func parseCount(s string) (int, error) {
	if s == "" {
		return 0, errors.New("missing count before \"/\"")
	}
	n, err := strconv.Atoi(s)
	switch {
	case errors.Is(err, strconv.ErrRange):
		return 0, fmt.Errorf("count %q is too large", s)
	case err != nil:
		return 0, fmt.Errorf("count %q is not a whole number", s)
	case n <= 0:
		return 0, fmt.Errorf("count must be positive, got %d", n)
	}
	return n, nil
}

// parsePeriod accepts a Go duration, a leading whole number of days ("1d",
// "1d12h") or a bare unit ("s", "m", "h", "d").
func parsePeriod(s string) (time.Duration, error) {
	if s == "" {
		return 0, errors.New("missing period after \"/\" (want e.g. \"1s\", \"1m\", \"1h\", \"1d\")")
	}
	if s == "s" || s == "m" || s == "h" || s == "d" {
		s = "1" + s
	}
	var days time.Duration
	if i := strings.IndexByte(s, 'd'); i >= 0 {
		n, err := strconv.Atoi(s[:i])
		if err != nil || n < 0 || n > math.MaxInt64/int(day) {
			return 0, fmt.Errorf("bad period %q (want e.g. \"1s\", \"1m\", \"1h\", \"1d\")", s)
		}
		days, s = time.Duration(n)*day, s[i+1:]
	}
	var d time.Duration
	if s != "" {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, fmt.Errorf("bad period %q (want e.g. \"1s\", \"1m\", \"1h\", \"1d\")", s)
		}
	}
	if d > math.MaxInt64-days {
		return 0, errors.New("period is too long")
	}
	if d+days <= 0 {
		return 0, errors.New("period must be positive")
	}
	return d + days, nil
}

// String formats r so that ParseRate reads it back: "50/1s", "10/1m",
// "1000/1h", "5000/1d"; the zero Rate is "none".
func (r Rate) String() string {
	if r.IsZero() {
		return "none"
	}
	if r.Per >= day && r.Per%day == 0 {
		return fmt.Sprintf("%d/%dd", r.N, r.Per/day)
	}
	p := r.Per.String()
	if strings.HasSuffix(p, "m0s") {
		p = strings.TrimSuffix(p, "0s") // "1m0s" -> "1m"
	}
	if strings.HasSuffix(p, "h0m") {
		p = strings.TrimSuffix(p, "0m") // "1h0m" -> "1h"
	}
	return fmt.Sprintf("%d/%s", r.N, p)
}

// IsZero reports whether r limits nothing: N or Per not positive.
func (r Rate) IsZero() bool { return r.N <= 0 || r.Per <= 0 }

// scaled is r with N multiplied by f in (0, 1], rounded down and at least 1
// event per Per: an adjustment only ever slows a rate down.
func (r Rate) scaled(f float64) Rate {
	if f >= 1 {
		return r
	}
	r.N = max(1, int(float64(r.N)*f))
	return r
}

// limit is r in events per second, as x/time/rate counts.
func (r Rate) limit() rate.Limit { return rate.Limit(float64(r.N) / r.Per.Seconds()) }

// burst is how many events may go at once from idle: a tenth of N, so a rate
// holds within 10% over any window of Per or more, even from idle.
func (r Rate) burst() int { return max(1, r.N/10) }

// idleAfter is how long a limiter of r may sit unused before it is dropped:
// 2×Per and at least a minute. An empty bucket refills in burst/N×Per, at
// most Per, so a limiter idle that long is full and dropping it loses nothing.
func (r Rate) idleAfter() time.Duration {
	if r.Per > math.MaxInt64/2 {
		return math.MaxInt64
	}
	return max(2*r.Per, time.Minute)
}
