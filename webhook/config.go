package webhook

import (
	"cmp"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/mtad/mtad/deliverylog"
)

// Defaults of the Endpoint fields left zero.
const (
	DefaultBatchSize     = 100
	DefaultFlushInterval = time.Second
	DefaultTimeout       = 10 * time.Second
	DefaultMinBackoff    = time.Second
	DefaultMaxBackoff    = 5 * time.Minute
)

// maxBatchSize bounds BatchSize, and so the memory one POST holds.
const maxBatchSize = 10000

// maxNameLen bounds an endpoint name, which is part of outbox keys.
const maxNameLen = 64

// Kinds are the event kinds an Endpoint may select.
var Kinds = []string{
	deliverylog.Accepted, deliverylog.Attempt, deliverylog.Delivered, deliverylog.Deferred,
	deliverylog.Failed, deliverylog.DSN, deliverylog.Shaping,
}

// Config is the webhook configuration: the endpoints events are POSTed to.
type Config struct {
	Endpoints []Endpoint
}

// Endpoint is one receiver of delivery events. Zero durations and sizes
// take the defaults above.
type Endpoint struct {
	Name          string            // unique, [a-z0-9-]; names the outbox in the journal, so keep it across restarts
	URL           string            // http or https
	Events        []string          // the kinds to send (see Kinds); empty means all
	Headers       map[string]string // added to every POST, such as an Authorization
	BatchSize     int               // most events in one POST
	FlushInterval time.Duration     // longest wait before a partial batch goes out
	Timeout       time.Duration     // of one POST, answer included
	MinBackoff    time.Duration     // first wait after a failed POST, doubled after each failure
	MaxBackoff    time.Duration     // longest wait between retries
}

// Validate reports every problem of c, each naming the endpoint and the
// field, as webhook.endpoint.NAME.FIELD.
func (c Config) Validate() error {
	var errs []error
	seen := map[string]bool{}
	for i, ep := range c.Endpoints {
		key := fmt.Sprintf("webhook.endpoint[%d]", i)
		if err := checkName(ep.Name); err != nil {
			errs = append(errs, fmt.Errorf("%s.name: %w", key, err))
		} else if seen[ep.Name] {
			errs = append(errs, fmt.Errorf("%s.name: endpoint %q defined twice", key, ep.Name))
		} else {
			key = "webhook.endpoint." + ep.Name
		}
		seen[ep.Name] = true
		errs = append(errs, ep.validate(key)...)
	}
	return errors.Join(errs...)
}

func (ep *Endpoint) validate(key string) []error {
	var errs []error
	add := func(field string, err error) {
		if err != nil {
			errs = append(errs, fmt.Errorf("%s.%s: %w", key, field, err))
		}
	}
	add("url", checkURL(ep.URL))
	add("events", checkKinds(ep.Events))
	add("headers", checkHeaders(ep.Headers))
	if ep.BatchSize < 0 || ep.BatchSize > maxBatchSize {
		add("batch-size", fmt.Errorf("%d is not between 1 and %d", ep.BatchSize, maxBatchSize))
	}
	add("flush-interval", checkDuration(ep.FlushInterval))
	add("timeout", checkDuration(ep.Timeout))
	add("min-backoff", checkDuration(ep.MinBackoff))
	add("max-backoff", checkDuration(ep.MaxBackoff))
	if d := ep.withDefaults(); d.MinBackoff > d.MaxBackoff {
		add("max-backoff", fmt.Errorf("%v is below min-backoff %v", d.MaxBackoff, d.MinBackoff))
	}
	return errs
}

func checkName(name string) error {
	if name == "" {
		return errors.New("missing")
	}
	if len(name) > maxNameLen {
		return fmt.Errorf("%q is longer than %d characters", name, maxNameLen)
	}
	for _, r := range name {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '-' {
			return fmt.Errorf("%q: use only a-z, 0-9 and -", name)
		}
	}
	return nil
}

func checkURL(s string) error {
	if s == "" {
		return errors.New("missing")
	}
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("scheme %q is not http or https", u.Scheme)
	}
	if u.Host == "" {
		return errors.New("no host")
	}
	return nil
}

func checkKinds(kinds []string) error {
	for _, k := range kinds {
		if !slices.Contains(Kinds, k) {
			return fmt.Errorf("unknown event kind %q (known: %s)", k, strings.Join(Kinds, ", "))
		}
	}
	return nil
}

func checkHeaders(h map[string]string) error {
	for name, v := range h {
		if name == "" || strings.ContainsFunc(name, notTokenChar) {
			return fmt.Errorf("%q is not a header name", name)
		}
		if strings.ContainsAny(v, "\r\n\x00") {
			return fmt.Errorf("value of %s holds a line break or NUL", name)
		}
	}
	return nil
}

// notTokenChar reports whether r may not appear in a header name (RFC 9110,
// section 5.6.2).
func notTokenChar(r rune) bool {
	if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
		return false
	}
	return !strings.ContainsRune("!#$%&'*+-.^_`|~", r)
}

func checkDuration(d time.Duration) error {
	if d < 0 {
		return fmt.Errorf("negative duration %v", d)
	}
	return nil
}

// withDefaults returns ep with its zero fields set to the defaults.
func (ep Endpoint) withDefaults() Endpoint {
	if ep.BatchSize == 0 {
		ep.BatchSize = DefaultBatchSize
	}
	ep.FlushInterval = cmp.Or(ep.FlushInterval, DefaultFlushInterval)
	ep.Timeout = cmp.Or(ep.Timeout, DefaultTimeout)
	ep.MinBackoff = cmp.Or(ep.MinBackoff, DefaultMinBackoff)
	ep.MaxBackoff = cmp.Or(ep.MaxBackoff, DefaultMaxBackoff)
	return ep
}
