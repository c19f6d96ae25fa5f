package testdns

import (
	"fmt"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

const zone = `
$ORIGIN example.test.
@        3600 IN SOA ns.example.test. admin.example.test. 1 3600 600 86400 60
@             IN MX  10 mx1
mx1           IN A   127.0.0.2
mx1           IN AAAA ::1
alias         IN CNAME mx1
dangling      IN CNAME missing
loop1         IN CNAME loop2
loop2         IN CNAME loop1
a.b.deep      IN TXT "x"
`

// exchange sends one query to s over network ("udp" or "tcp").
func exchange(t *testing.T, s *Server, network string, m *dns.Msg) *dns.Msg {
	t.Helper()
	c := &dns.Client{Net: network}
	resp, _, err := c.Exchange(m, s.Addr)
	if err != nil {
		t.Fatalf("exchange %s: %v", network, err)
	}
	return resp
}

func query(name string, qtype uint16) *dns.Msg {
	return new(dns.Msg).SetQuestion(name, qtype)
}

func TestAnswers(t *testing.T) {
	s := Start(t, zone)
	tests := []struct {
		name    string
		qname   string
		qtype   uint16
		rcode   int
		answers []string // record types in the answer section
		soa     bool     // SOA in the authority section
	}{
		{"records", "mx1.example.test.", dns.TypeA, dns.RcodeSuccess, []string{"A"}, false},
		{"case-insensitive", "MX1.Example.TEST.", dns.TypeAAAA, dns.RcodeSuccess, []string{"AAAA"}, false},
		{"nodata", "mx1.example.test.", dns.TypeMX, dns.RcodeSuccess, nil, true},
		{"empty non-terminal", "deep.example.test.", dns.TypeA, dns.RcodeSuccess, nil, true},
		{"nxdomain", "nope.example.test.", dns.TypeA, dns.RcodeNameError, nil, true},
		{"nxdomain outside zone", "nope.invalid.", dns.TypeA, dns.RcodeNameError, nil, false},
		{"cname chased", "alias.example.test.", dns.TypeA, dns.RcodeSuccess, []string{"CNAME", "A"}, false},
		{"cname asked", "alias.example.test.", dns.TypeCNAME, dns.RcodeSuccess, []string{"CNAME"}, false},
		{"cname to nodata", "alias.example.test.", dns.TypeTXT, dns.RcodeSuccess, []string{"CNAME"}, true},
		{"cname to nothing", "dangling.example.test.", dns.TypeA, dns.RcodeNameError, []string{"CNAME"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := exchange(t, s, "udp", query(tt.qname, tt.qtype))
			if resp.Rcode != tt.rcode {
				t.Errorf("rcode %s, want %s", dns.RcodeToString[resp.Rcode], dns.RcodeToString[tt.rcode])
			}
			if !resp.Authoritative {
				t.Error("AA bit not set")
			}
			if got := types(resp.Answer); strings.Join(got, ",") != strings.Join(tt.answers, ",") {
				t.Errorf("answer types %v, want %v", got, tt.answers)
			}
			if gotSOA := len(resp.Ns) == 1 && resp.Ns[0].Header().Rrtype == dns.TypeSOA; gotSOA != tt.soa {
				t.Errorf("authority %v, want SOA: %v", resp.Ns, tt.soa)
			}
			if len(resp.Answer) > 0 && resp.Answer[0].Header().Name != tt.qname {
				t.Errorf("owner %q, want the name as asked %q", resp.Answer[0].Header().Name, tt.qname)
			}
		})
	}
}

func types(rrs []dns.RR) []string {
	var out []string
	for _, rr := range rrs {
		out = append(out, dns.TypeToString[rr.Header().Rrtype])
	}
	return out
}

func TestCNAMELoopIsBounded(t *testing.T) {
	s := Start(t, zone)
	resp := exchange(t, s, "udp", query("loop1.example.test.", dns.TypeA))
	if resp.Rcode != dns.RcodeSuccess || len(resp.Answer) != maxChain+1 {
		t.Fatalf("rcode %s, %d answers; want NOERROR and %d CNAMEs",
			dns.RcodeToString[resp.Rcode], len(resp.Answer), maxChain+1)
	}
}

func TestTruncation(t *testing.T) {
	var b strings.Builder
	for i := range 100 {
		fmt.Fprintf(&b, "big.example.test. 300 IN A 127.0.1.%d\n", i)
	}
	s := Start(t, b.String())
	tests := []struct {
		name      string
		network   string
		edns      uint16 // 0: no EDNS0
		truncated bool
	}{
		{"udp without edns0", "udp", 0, true},
		{"udp with small edns0 buffer", "udp", 1000, true},
		{"udp with edns0 4096", "udp", 4096, false},
		{"tcp", "tcp", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := query("big.example.test.", dns.TypeA)
			if tt.edns > 0 {
				m.SetEdns0(tt.edns, false)
			}
			resp := exchange(t, s, tt.network, m)
			if resp.Truncated != tt.truncated {
				t.Errorf("TC %v, want %v", resp.Truncated, tt.truncated)
			}
			if !tt.truncated && len(resp.Answer) != 100 {
				t.Errorf("%d answers, want 100", len(resp.Answer))
			}
			resp.Compress = true
			if size := resp.Len(); tt.truncated && size > max(int(tt.edns), dns.MinMsgSize) {
				t.Errorf("truncated answer is %d bytes", size)
			}
		})
	}
}

func TestSetRcode(t *testing.T) {
	s := Start(t, zone)
	s.SetRcode("mx1.example.test", dns.TypeA, dns.RcodeServerFailure)
	s.SetRcode("Example.Test.", dns.TypeNone, dns.RcodeRefused)
	tests := []struct {
		name  string
		qname string
		qtype uint16
		rcode int
	}{
		{"forced type", "mx1.example.test.", dns.TypeA, dns.RcodeServerFailure},
		{"other type", "mx1.example.test.", dns.TypeAAAA, dns.RcodeSuccess},
		{"every type", "example.test.", dns.TypeMX, dns.RcodeRefused},
		{"every type again", "example.test.", dns.TypeTXT, dns.RcodeRefused},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := exchange(t, s, "udp", query(tt.qname, tt.qtype))
			if resp.Rcode != tt.rcode || len(resp.Answer) > 0 && tt.rcode != dns.RcodeSuccess {
				t.Errorf("rcode %s with %d answers, want %s",
					dns.RcodeToString[resp.Rcode], len(resp.Answer), dns.RcodeToString[tt.rcode])
			}
		})
	}
	s.SetRcode("mx1.example.test.", dns.TypeA, dns.RcodeSuccess)
	if resp := exchange(t, s, "udp", query("mx1.example.test.", dns.TypeA)); len(resp.Answer) != 1 {
		t.Errorf("after clearing the override: rcode %s, answer %v", dns.RcodeToString[resp.Rcode], resp.Answer)
	}
}

func TestSetAuthenticated(t *testing.T) {
	s := Start(t, zone+"other.test. 300 IN CNAME mx1.example.test.\n")
	s.SetAuthenticated("example.test")
	tests := []struct {
		name  string
		qname string
		do    bool
		ad    bool
	}{
		{"secure with DO", "mx1.example.test.", true, true},
		{"secure without DO", "mx1.example.test.", false, false},
		{"secure negative answer", "nope.example.test.", true, true},
		{"insecure name", "other.test.", true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := query(tt.qname, dns.TypeA)
			if tt.do {
				m.SetEdns0(4096, true)
			}
			resp := exchange(t, s, "udp", m)
			if resp.AuthenticatedData != tt.ad {
				t.Errorf("AD %v, want %v", resp.AuthenticatedData, tt.ad)
			}
			if opt := resp.IsEdns0(); tt.do && (opt == nil || !opt.Do()) {
				t.Errorf("OPT %v, want DO echoed", opt)
			}
		})
	}
}

func TestQueries(t *testing.T) {
	s := Start(t, zone)
	for _, network := range []string{"udp", "tcp", "udp"} {
		exchange(t, s, network, query("example.test.", dns.TypeMX))
	}
	if got := s.Queries(); got != 3 {
		t.Errorf("Queries() = %d, want 3", got)
	}
}

func TestBadZone(t *testing.T) {
	if _, err := newServer("example.test. IN BOGUS 1\n"); err == nil {
		t.Error("a zone with an unknown type parsed")
	}
}
