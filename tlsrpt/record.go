package tlsrpt

import (
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// PolicyType is the kind of policy a session was held to (RFC 8460
// section 4.3).
type PolicyType string

// Policy types.
const (
	PolicySTS  PolicyType = "sts"
	PolicyTLSA PolicyType = "tlsa"
	PolicyNone PolicyType = "no-policy-found"
)

// Result types of a failed session (RFC 8460 section 4.3, the IANA
// "STARTTLS Validation Result Types" registry).
const (
	ResultSTARTTLSNotSupported    = "starttls-not-supported"
	ResultCertificateHostMismatch = "certificate-host-mismatch"
	ResultCertificateExpired      = "certificate-expired"
	ResultCertificateNotTrusted   = "certificate-not-trusted"
	ResultValidationFailure       = "validation-failure"
	ResultTLSAInvalid             = "tlsa-invalid"
	ResultDNSSECInvalid           = "dnssec-invalid"
	ResultDANERequired            = "dane-required"
	ResultSTSPolicyFetchError     = "sts-policy-fetch-error"
	ResultSTSPolicyInvalid        = "sts-policy-invalid"
	ResultSTSWebPKIInvalid        = "sts-webpki-invalid"
)

var resultTypes = map[string]bool{
	ResultSTARTTLSNotSupported: true, ResultCertificateHostMismatch: true, ResultCertificateExpired: true,
	ResultCertificateNotTrusted: true, ResultValidationFailure: true, ResultTLSAInvalid: true,
	ResultDNSSECInvalid: true, ResultDANERequired: true, ResultSTSPolicyFetchError: true,
	ResultSTSPolicyInvalid: true, ResultSTSWebPKIInvalid: true,
}

// Default bounds of a Recorder.
const (
	DefaultMaxDomains  = 100_000
	DefaultMaxPolicies = 32
	DefaultMaxDetails  = 100
)

// otherReason is the failure-reason-code of the group that collects the
// failures beyond MaxDetails groups.
const otherReason = "other"

// Result is the outcome of one TLS negotiation with one MX host, or of the
// policy lookup that came before it.
type Result struct {
	Domain        string     // the policy domain (recipient domain)
	PolicyType    PolicyType // empty means PolicyNone
	PolicyStrings []string   // the STS policy lines or TLSA records as text
	MXHost        string
	SendingIP     string
	ReceivingIP   string
	Success       bool
	ResultType    string // on failure, one of the Result constants; an unknown one counts as validation-failure
	FailureReason string // failure-reason-code text; must hold no secrets
}

// Recorder aggregates results per UTC day, policy domain and policy, for
// reports. It is safe for concurrent use. Set the Max fields, if at all,
// before the first Record or Load.
type Recorder struct {
	MaxDomains  int // policy domains per day
	MaxPolicies int // policies per domain and day
	MaxDetails  int // failure-detail groups per policy, besides the "other" group

	dropped atomic.Uint64

	mu    sync.Mutex
	days  map[int64]*dayAgg // by the Unix time of the day's start; guarded by mu
	taken int64             // start of the latest day taken, or 0; guarded by mu
}

type dayAgg struct {
	domains map[string]*domainAgg
}

type domainAgg struct {
	policies map[string]*policyAgg // by policyID.key
}

// policyID names a policy: its type and text, and for TLSA the MX host
// whose TLSA records they are.
type policyID struct {
	typ     PolicyType
	strings []string
	host    string
}

type policyAgg struct {
	id      policyID
	success uint64
	failure uint64
	details map[detailKey]*detailAgg
	other   uint64 // failures beyond MaxDetails groups
}

type detailKey struct {
	resultType  string
	sendingIP   string
	mxHost      string
	receivingIP string
}

type detailAgg struct {
	count  uint64
	reason string // the first reason given for the group
}

// NewRecorder returns an empty Recorder with the default bounds.
func NewRecorder() *Recorder {
	return &Recorder{
		MaxDomains:  DefaultMaxDomains,
		MaxPolicies: DefaultMaxPolicies,
		MaxDetails:  DefaultMaxDetails,
		days:        make(map[int64]*dayAgg),
	}
}

// Record counts res for the UTC day of at. A result that names no valid
// domain, has an unknown policy type, falls on a day already taken or is
// beyond the domain or policy bounds is only counted by Dropped.
func (r *Recorder) Record(res Result, at time.Time) {
	domain, id, ok := normalizeResult(res)
	if !ok {
		r.dropped.Add(1)
		return
	}
	var key detailKey
	var reason string
	if !res.Success {
		key, reason = normalizeDetail(res)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.policy(dayStart(at), domain, id)
	switch {
	case p == nil:
		r.dropped.Add(1)
	case res.Success:
		p.success++
	default:
		p.failure++
		p.addDetail(key, reason, 1, r.maxDetails())
	}
}

// Dropped is the number of results that no report will count since the
// Recorder was made.
func (r *Recorder) Dropped() uint64 { return r.dropped.Load() }

// Days returns the days that have results, as UTC midnights, oldest first.
func (r *Recorder) Days() []time.Time {
	r.mu.Lock()
	keys := make([]int64, 0, len(r.days))
	for k := range r.days {
		keys = append(keys, k)
	}
	r.mu.Unlock()
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	days := make([]time.Time, len(keys))
	for i, k := range keys {
		days[i] = time.Unix(k, 0).UTC()
	}
	return days
}

// Take removes the results of the UTC day of day and returns them as one
// report per policy domain, keyed by domain. The reports have no submitter
// yet (see Report.SetSubmitter). Results recorded later for that day or an
// earlier one are dropped.
func (r *Recorder) Take(day time.Time) map[string]*Report {
	start := dayStart(day)
	r.mu.Lock()
	d := r.days[start]
	delete(r.days, start)
	r.taken = max(r.taken, start)
	r.mu.Unlock()
	reports := make(map[string]*Report)
	if d == nil {
		return reports
	}
	for domain, da := range d.domains {
		reports[domain] = da.report(domain, time.Unix(start, 0).UTC())
	}
	return reports
}

// policy finds or makes the aggregate for id, or returns nil when the day
// is taken or a bound is reached. It must run under r.mu.
func (r *Recorder) policy(start int64, domain string, id policyID) *policyAgg {
	if start <= r.taken {
		return nil
	}
	if r.days == nil {
		r.days = make(map[int64]*dayAgg)
	}
	d := r.days[start]
	if d == nil {
		d = &dayAgg{domains: make(map[string]*domainAgg)}
		r.days[start] = d
	}
	da := d.domains[domain]
	if da == nil {
		if len(d.domains) >= bound(r.MaxDomains, DefaultMaxDomains) {
			return nil
		}
		da = &domainAgg{policies: make(map[string]*policyAgg)}
		d.domains[domain] = da
	}
	k := id.key()
	p := da.policies[k]
	if p == nil {
		if len(da.policies) >= bound(r.MaxPolicies, DefaultMaxPolicies) {
			return nil
		}
		p = &policyAgg{id: id, details: make(map[detailKey]*detailAgg)}
		da.policies[k] = p
	}
	return p
}

func (r *Recorder) maxDetails() int { return bound(r.MaxDetails, DefaultMaxDetails) }

// addDetail counts n failures in the group key, or in the other group when
// the policy already has limit groups.
func (p *policyAgg) addDetail(key detailKey, reason string, n uint64, limit int) {
	g := p.details[key]
	if g == nil {
		if len(p.details) >= limit {
			p.other += n
			return
		}
		g = &detailAgg{reason: reason}
		p.details[key] = g
	}
	g.count += n
	if g.reason == "" {
		g.reason = reason
	}
}

// key is the map key of a policy: its fields joined by NUL, which
// normalized fields never contain.
func (id policyID) key() string {
	k := string(id.typ) + "\x00" + id.host
	for _, s := range id.strings {
		k += "\x00" + s
	}
	return k
}

// dayStart is the Unix time of the UTC midnight that starts t's day.
func dayStart(t time.Time) int64 {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Unix()
}

func bound(v, def int) int {
	if v <= 0 {
		return def
	}
	return v
}
