package tlsrpt

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

var (
	day1 = time.Date(2026, 7, 10, 0, 0, 0, 0, time.UTC)
	day2 = day1.Add(24 * time.Hour)
)

const (
	testOrg     = "mta.sender.example"
	testContact = "tlsrpt@sender.example"
)

var (
	stsLines = []string{"version: STSv1", "mode: enforce", "mx: mx1.example.com", "mx: *.backup.example.com", "max_age: 604800"}
	tlsaMX1  = []string{"3 1 1 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}
	tlsaMX2  = []string{"2 0 1 fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"}
)

// record fills r with a mix: an STS domain and a DANE domain (two MX
// hosts, and sessions without a policy) on day 1, fewer on day 2, with
// results given in a shuffled order so the golden files check sorting.
func record(r *Recorder) {
	at1 := day1.Add(13 * time.Hour)
	at2 := day2.Add(23*time.Hour + 59*time.Minute + 59*time.Second)
	sts := Result{Domain: "Example.COM.", PolicyType: PolicySTS, PolicyStrings: stsLines, MXHost: "mx1.example.com",
		SendingIP: "192.0.2.1", ReceivingIP: "198.51.100.10"}
	stsFail := func(rt, mx, rip, reason string) Result {
		f := sts
		f.Success, f.ResultType, f.MXHost, f.ReceivingIP, f.FailureReason = false, rt, mx, rip, reason
		return f
	}
	sts.Success = true
	tlsa1 := Result{Domain: "example.net", PolicyType: PolicyTLSA, PolicyStrings: tlsaMX1, MXHost: "mx1.example.net",
		SendingIP: "2001:db8::25", ReceivingIP: "2001:db8:1::10", Success: true}
	tlsa2 := Result{Domain: "example.net", PolicyType: PolicyTLSA, PolicyStrings: tlsaMX2, MXHost: "mx2.example.net",
		SendingIP: "2001:db8::25", ReceivingIP: "2001:db8:2::10"}
	none := Result{Domain: "example.net", MXHost: "mx3.example.net", SendingIP: "192.0.2.1", ReceivingIP: "203.0.113.7"}

	for range 5 {
		r.Record(sts, at1)
	}
	r.Record(stsFail(ResultCertificateExpired, "mx1.example.com", "198.51.100.10", "certificate expired 2026-07-01"), at1)
	r.Record(stsFail(ResultValidationFailure, "mx9.evil.example", "203.0.113.99", "mx not in policy"), at1)
	r.Record(stsFail(ResultCertificateExpired, "mx1.example.com", "198.51.100.10", "a later reason is not kept"), at1)
	r.Record(stsFail(ResultSTARTTLSNotSupported, "mx2.backup.example.com", "198.51.100.20", ""), at1)
	r.Record(stsFail("no-such-result-type", "mx2.backup.example.com", "198.51.100.20", "bad\r\nreason\x00"), at1)

	tlsa2Fail := tlsa2
	tlsa2Fail.ResultType, tlsa2Fail.FailureReason = ResultTLSAInvalid, "no TLSA record matches the chain"
	r.Record(tlsa2Fail, at1)
	r.Record(tlsa1, at1)
	r.Record(tlsa1, at1)
	tlsa2.Success = true
	r.Record(tlsa2, at1)
	none.Success = true
	r.Record(none, at1)
	noneFail := none
	noneFail.Success, noneFail.ResultType = false, ResultSTARTTLSNotSupported
	r.Record(noneFail, at1)
	r.Record(noneFail, at1)

	r.Record(sts, at2)
	r.Record(stsFail(ResultCertificateHostMismatch, "mx1.example.com", "198.51.100.10", ""), at2)
	r.Record(none, at2)
}

func TestTakeGolden(t *testing.T) {
	r := NewRecorder()
	record(r)
	if got := r.Days(); !slices.Equal(got, []time.Time{day1, day2}) {
		t.Fatalf("Days() = %v, want %v and %v", got, day1, day2)
	}
	for _, day := range []time.Time{day1, day2} {
		reports := r.Take(day)
		for domain, rep := range reports {
			if err := rep.SetSubmitter(testOrg, testContact); err != nil {
				t.Fatal(err)
			}
			js, err := rep.JSON()
			if err != nil {
				t.Fatal(err)
			}
			checkSchema(t, js)
			golden(t, fmt.Sprintf("%s_%s.golden", day.Format(time.DateOnly), domain), js)
		}
		if n := len(reports); day == day1 && n != 2 || day == day2 && n != 2 {
			t.Errorf("Take(%v) gave %d reports", day, n)
		}
	}
	if days := r.Days(); len(days) != 0 {
		t.Errorf("Days() after taking every day = %v", days)
	}
	if r.Dropped() != 0 {
		t.Errorf("Dropped() = %d, want 0", r.Dropped())
	}
}

// golden compares got with testdata/name, or writes it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s (run with -update to accept):\n%s", path, got)
	}
}

// The fields of RFC 8460 section 4.4, and whether each is required.
var (
	reportKeys    = map[string]bool{"organization-name": true, "date-range": true, "contact-info": true, "report-id": true, "policies": true}
	dateRangeKeys = map[string]bool{"start-datetime": true, "end-datetime": true}
	policyKeys    = map[string]bool{"policy": true, "summary": true, "failure-details": false}
	detailsKeys   = map[string]bool{"policy-type": true, "policy-string": false, "policy-domain": true, "mx-host": false}
	summaryKeys   = map[string]bool{"total-successful-session-count": true, "total-failure-session-count": true}
	failureKeys   = map[string]bool{"result-type": true, "sending-mta-ip": false, "receiving-mx-hostname": false,
		"receiving-mx-helo": false, "receiving-ip": false, "failed-session-count": true,
		"additional-information": false, "failure-reason-code": false}
)

// checkSchema checks js against the field names and types of RFC 8460
// section 4.4, and that each policy's failure details add up to its
// failure count.
func checkSchema(t *testing.T, js []byte) {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(js, &m); err != nil {
		t.Fatalf("report is not JSON: %v", err)
	}
	keys(t, "report", m, reportKeys)
	dr, _ := m["date-range"].(map[string]any)
	keys(t, "date-range", dr, dateRangeKeys)
	for k := range dateRangeKeys {
		s, _ := dr[k].(string)
		if _, err := time.Parse(time.RFC3339, s); err != nil {
			t.Errorf("%s %q is not RFC 3339: %v", k, s, err)
		}
	}
	policies, ok := m["policies"].([]any)
	if !ok || len(policies) == 0 {
		t.Fatalf("policies is not a non-empty array: %v", m["policies"])
	}
	for _, p := range policies {
		checkPolicy(t, p)
	}
}

func checkPolicy(t *testing.T, p any) {
	t.Helper()
	pm, _ := p.(map[string]any)
	keys(t, "policies[]", pm, policyKeys)
	pd, _ := pm["policy"].(map[string]any)
	keys(t, "policy", pd, detailsKeys)
	if pt := pd["policy-type"]; pt != "sts" && pt != "tlsa" && pt != "no-policy-found" {
		t.Errorf("policy-type %v", pt)
	}
	sum, _ := pm["summary"].(map[string]any)
	keys(t, "summary", sum, summaryKeys)
	fds, _ := pm["failure-details"].([]any)
	var failed float64
	for _, fd := range fds {
		fm, _ := fd.(map[string]any)
		keys(t, "failure-details[]", fm, failureKeys)
		if rt, _ := fm["result-type"].(string); !resultTypes[rt] {
			t.Errorf("result-type %q is not registered", rt)
		}
		n, _ := fm["failed-session-count"].(float64)
		failed += n
	}
	if total := sum["total-failure-session-count"]; total != failed {
		t.Errorf("failure details add up to %v, total-failure-session-count is %v", failed, total)
	}
}

// keys checks that m has every required key of want and no other key.
func keys(t *testing.T, what string, m map[string]any, want map[string]bool) {
	t.Helper()
	if m == nil {
		t.Errorf("%s is not an object", what)
		return
	}
	for k, required := range want {
		if _, ok := m[k]; required && !ok {
			t.Errorf("%s lacks %q", what, k)
		}
	}
	for k := range m {
		if _, ok := want[k]; !ok {
			t.Errorf("%s has unknown field %q", what, k)
		}
	}
}

func TestNormalize(t *testing.T) {
	at := day1.Add(time.Hour)
	tests := []struct {
		name   string
		res    Result
		domain string // "" when the result is dropped
		detail FailureDetail
	}{
		{"case and dot", Result{Domain: "MAIL.Example.ORG.", Success: true}, "mail.example.org", FailureDetail{}},
		{"idn", Result{Domain: "bücher.example", Success: true}, "xn--bcher-kva.example", FailureDetail{}},
		{"not a host", Result{Domain: "a b.example", Success: true}, "", FailureDetail{}},
		{"empty", Result{Success: true}, "", FailureDetail{}},
		{"header injection", Result{Domain: "x.example\r\nBcc: a@b", Success: true}, "", FailureDetail{}},
		{"unknown type", Result{Domain: "x.example", PolicyType: "dmarc", Success: true}, "", FailureDetail{}},
		{"unknown result", Result{Domain: "x.example", ResultType: "weird", MXHost: "MX.x.example.",
			SendingIP: "::ffff:192.0.2.1", ReceivingIP: "not an ip", FailureReason: "\x1b[31mred\x1b[0m"},
			"x.example", FailureDetail{ResultType: ResultValidationFailure, SendingMTAIP: "192.0.2.1",
				ReceivingMXHostname: "mx.x.example", FailedSessionCount: 1, FailureReasonCode: "[31mred [0m"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := NewRecorder()
			r.Record(tc.res, at)
			reports := r.Take(at)
			if tc.domain == "" {
				if len(reports) != 0 || r.Dropped() != 1 {
					t.Fatalf("got %d reports and %d dropped, want the result dropped", len(reports), r.Dropped())
				}
				return
			}
			rep := reports[tc.domain]
			if rep == nil || len(reports) != 1 {
				t.Fatalf("got reports for %v, want %s", slices.Collect(maps.Keys(reports)), tc.domain)
			}
			fds := rep.Policies[0].FailureDetails
			if tc.detail == (FailureDetail{}) {
				if len(fds) != 0 {
					t.Errorf("failure details %+v", fds)
				}
			} else if len(fds) != 1 || fds[0] != tc.detail {
				t.Errorf("failure details %+v, want %+v", fds, tc.detail)
			}
		})
	}
}

func TestTakenDayDropsLateResults(t *testing.T) {
	r := NewRecorder()
	ok := Result{Domain: "example.com", Success: true}
	r.Record(ok, day2.Add(time.Hour))
	r.Take(day2)
	r.Record(ok, day2.Add(2*time.Hour)) // late for day 2
	r.Record(ok, day1.Add(2*time.Hour)) // and for day 1
	if r.Dropped() != 2 || len(r.Days()) != 0 {
		t.Fatalf("Dropped() = %d, Days() = %v; want 2 dropped and no days", r.Dropped(), r.Days())
	}
	r.Record(ok, day2.Add(24*time.Hour))
	if got := r.Take(day2.Add(24 * time.Hour)); got["example.com"] == nil {
		t.Fatalf("a later day was not counted: %v", got)
	}
}

func TestBounds(t *testing.T) {
	r := NewRecorder()
	r.MaxDomains, r.MaxPolicies, r.MaxDetails = 2, 2, 3
	at := day1.Add(time.Hour)
	for _, d := range []string{"a.example", "b.example", "c.example", "d.example"} {
		r.Record(Result{Domain: d, Success: true}, at)
	}
	for i := range 2 { // a second and a third policy for a.example
		r.Record(Result{Domain: "a.example", PolicyType: PolicyTLSA, MXHost: fmt.Sprintf("mx%d.a.example", i), Success: true}, at)
	}
	for i := range 7 { // seven failure groups for b.example: three kept, four folded
		r.Record(Result{Domain: "b.example", ResultType: ResultSTARTTLSNotSupported,
			ReceivingIP: fmt.Sprintf("192.0.2.%d", i)}, at)
	}
	if got := r.Dropped(); got != 3 {
		t.Errorf("Dropped() = %d, want 3 (two domains, one policy)", got)
	}
	reports := r.Take(at)
	if len(reports) != 2 || len(reports["a.example"].Policies) != 2 {
		t.Fatalf("got %d reports, a.example with %d policies; want 2 and 2", len(reports), len(reports["a.example"].Policies))
	}
	b := reports["b.example"].Policies[0]
	if b.Summary.Failed != 7 || b.Summary.Successful != 1 || len(b.FailureDetails) != 4 {
		t.Fatalf("b.example: summary %+v with %d details, want 1/7 with 4", b.Summary, len(b.FailureDetails))
	}
	other := b.FailureDetails[3]
	want := FailureDetail{ResultType: ResultValidationFailure, FailedSessionCount: 4, FailureReasonCode: "other"}
	if other != want {
		t.Errorf("overflow group %+v, want %+v", other, want)
	}
	if err := reports["b.example"].SetSubmitter(testOrg, testContact); err != nil {
		t.Fatal(err)
	}
	js, err := reports["b.example"].JSON()
	if err != nil {
		t.Fatal(err)
	}
	checkSchema(t, js)
}

// TestConcurrentRecord records from many goroutines while saving and
// listing days, for the race detector, and checks nothing is lost.
func TestConcurrentRecord(t *testing.T) {
	r := NewRecorder()
	const workers, each = 8, 500
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				res := Result{Domain: fmt.Sprintf("d%d.example", i%10), Success: i%3 != 0,
					ResultType: ResultCertificateExpired, SendingIP: fmt.Sprintf("192.0.2.%d", w)}
				r.Record(res, day1.Add(time.Duration(i)*time.Second))
			}
		})
	}
	wg.Go(func() {
		for range 20 {
			if err := r.Save(new(bytes.Buffer)); err != nil {
				t.Error(err)
			}
			r.Days()
		}
	})
	wg.Wait()
	var total uint64
	for _, rep := range r.Take(day1) {
		for _, p := range rep.Policies {
			total += p.Summary.Successful + p.Summary.Failed
		}
	}
	if total != workers*each {
		t.Errorf("counted %d sessions, want %d", total, workers*each)
	}
}

func TestIncompleteReport(t *testing.T) {
	rep := &Report{}
	if _, err := rep.JSON(); err == nil {
		t.Error("JSON of an empty report succeeded")
	}
	if err := rep.SetSubmitter(testOrg, testContact); err == nil {
		t.Error("SetSubmitter on a report without policies succeeded")
	}
	r := NewRecorder()
	r.Record(Result{Domain: "example.com", Success: true}, day1)
	rep = r.Take(day1)["example.com"]
	if _, err := rep.JSON(); err == nil {
		t.Error("JSON of a report without a submitter succeeded")
	}
	if err := rep.SetSubmitter("not a host!", testContact); err == nil {
		t.Error("SetSubmitter took a submitter that is not a host name")
	}
	if err := rep.SetSubmitter(testOrg, testContact); err != nil {
		t.Fatal(err)
	}
	if want := "2026-07-10_example.com@" + testOrg; rep.ReportID != want {
		t.Errorf("report-id %q, want %q", rep.ReportID, want)
	}
}
