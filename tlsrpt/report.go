package tlsrpt

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Report is one RFC 8460 report (section 4.4) for one policy domain and
// one UTC day. The JSON names are those of the RFC.
type Report struct {
	OrganizationName string    `json:"organization-name"`
	DateRange        DateRange `json:"date-range"`
	ContactInfo      string    `json:"contact-info"`
	ReportID         string    `json:"report-id"`
	Policies         []Policy  `json:"policies"`
}

// DateRange is the period a report covers.
type DateRange struct {
	Start time.Time `json:"start-datetime"`
	End   time.Time `json:"end-datetime"`
}

// Policy is the count of sessions held to one policy.
type Policy struct {
	Policy         PolicyDetails   `json:"policy"`
	Summary        Summary         `json:"summary"`
	FailureDetails []FailureDetail `json:"failure-details"`
}

// PolicyDetails names a policy. MXHost is the mx patterns of an STS
// policy, or the MX host of TLSA records (an array since RFC 8460 erratum
// 6241).
type PolicyDetails struct {
	Type   PolicyType `json:"policy-type"`
	String []string   `json:"policy-string,omitempty"`
	Domain string     `json:"policy-domain"`
	MXHost []string   `json:"mx-host,omitempty"`
}

// Summary counts a policy's sessions.
type Summary struct {
	Successful uint64 `json:"total-successful-session-count"`
	Failed     uint64 `json:"total-failure-session-count"`
}

// FailureDetail counts the failed sessions of one kind.
type FailureDetail struct {
	ResultType          string `json:"result-type"`
	SendingMTAIP        string `json:"sending-mta-ip,omitempty"`
	ReceivingMXHostname string `json:"receiving-mx-hostname,omitempty"`
	ReceivingIP         string `json:"receiving-ip,omitempty"`
	FailedSessionCount  uint64 `json:"failed-session-count"`
	FailureReasonCode   string `json:"failure-reason-code,omitempty"`
}

// ErrIncomplete is returned for a report that lacks a submitter or
// policies.
var ErrIncomplete = errors.New("tlsrpt: incomplete report")

// SetSubmitter fills in who sends the report: org, a host name, becomes
// the organization-name, the TLS-Report-Submitter and the right side of
// the report-id "<day>_<domain>@<org>" (unique since a day is taken
// once); contact is the contact-info, an address.
func (rep *Report) SetSubmitter(org, contact string) error {
	host, ok := hostname(org)
	if !ok {
		return fmt.Errorf("tlsrpt: submitter %q is not a host name", org)
	}
	domain := rep.Domain()
	if domain == "" {
		return fmt.Errorf("%w: no policies", ErrIncomplete)
	}
	rep.OrganizationName = host
	rep.ContactInfo = clean(contact, maxStringLen)
	rep.ReportID = rep.DateRange.Start.UTC().Format(time.DateOnly) + "_" + domain + "@" + host
	return nil
}

// Domain is the policy domain the report is about.
func (rep *Report) Domain() string {
	if len(rep.Policies) == 0 {
		return ""
	}
	return rep.Policies[0].Policy.Domain
}

// JSON returns the report as RFC 8460 section 4.4 JSON.
func (rep *Report) JSON() ([]byte, error) {
	if rep.OrganizationName == "" || rep.ReportID == "" || rep.Domain() == "" {
		return nil, ErrIncomplete
	}
	return json.MarshalIndent(rep, "", "  ")
}

// report builds the report of a domain's day from its counts, sorted.
func (da *domainAgg) report(domain string, day time.Time) *Report {
	rep := &Report{DateRange: DateRange{Start: day, End: day.Add(24*time.Hour - time.Second)}}
	for _, p := range da.policies {
		rep.Policies = append(rep.Policies, p.policy(domain))
	}
	slices.SortFunc(rep.Policies, comparePolicies)
	return rep
}

func (p *policyAgg) policy(domain string) Policy {
	out := Policy{
		Policy:         PolicyDetails{Type: p.id.typ, String: slices.Clone(p.id.strings), Domain: domain},
		Summary:        Summary{Successful: p.success, Failed: p.failure},
		FailureDetails: []FailureDetail{},
	}
	switch {
	case p.id.typ == PolicySTS:
		out.Policy.MXHost = stsMX(p.id.strings)
	case p.id.typ == PolicyTLSA && p.id.host != "":
		out.Policy.MXHost = []string{p.id.host}
	}
	for k, g := range p.details {
		out.FailureDetails = append(out.FailureDetails, FailureDetail{
			ResultType: k.resultType, SendingMTAIP: k.sendingIP, ReceivingMXHostname: k.mxHost,
			ReceivingIP: k.receivingIP, FailedSessionCount: g.count, FailureReasonCode: g.reason,
		})
	}
	slices.SortFunc(out.FailureDetails, compareDetails)
	if p.other > 0 {
		out.FailureDetails = append(out.FailureDetails, FailureDetail{
			ResultType: ResultValidationFailure, FailedSessionCount: p.other, FailureReasonCode: otherReason,
		})
	}
	return out
}

func comparePolicies(a, b Policy) int {
	if c := strings.Compare(string(a.Policy.Type), string(b.Policy.Type)); c != 0 {
		return c
	}
	if c := slices.Compare(a.Policy.MXHost, b.Policy.MXHost); c != 0 {
		return c
	}
	return slices.Compare(a.Policy.String, b.Policy.String)
}

func compareDetails(a, b FailureDetail) int {
	for _, c := range []int{
		strings.Compare(a.ResultType, b.ResultType),
		strings.Compare(a.SendingMTAIP, b.SendingMTAIP),
		strings.Compare(a.ReceivingMXHostname, b.ReceivingMXHostname),
		strings.Compare(a.ReceivingIP, b.ReceivingIP),
	} {
		if c != 0 {
			return c
		}
	}
	return 0
}
