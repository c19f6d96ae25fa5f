package testdns

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/miekg/dns"
)

const (
	maxChain   = 8    // CNAME links followed in one answer
	ednsBuffer = 4096 // the UDP buffer the server advertises
	defaultTTL = 300  // for zone lines without a TTL and no $TTL
)

// Server is a DNS server on loopback. Addr is "127.0.0.1:port", the same
// port for UDP and TCP.
type Server struct {
	Addr string

	// Read-only after Start.
	records map[string][]dns.RR // lower-case owner FQDN -> records
	names   map[string]bool     // owners and all their ancestors
	soas    []*dns.SOA

	mu      sync.RWMutex
	rcodes  map[rcodeKey]int // guarded by mu
	secure  []string         // guarded by mu; lower-case FQDN suffixes
	queries atomic.Int64
}

type rcodeKey struct {
	name  string
	qtype uint16
}

// Start parses zone, serves it on 127.0.0.1 over UDP and TCP, and stops
// the server in t.Cleanup. A zone that does not parse fails the test.
func Start(t testing.TB, zone string) *Server {
	t.Helper()
	s, err := newServer(zone)
	if err != nil {
		t.Fatalf("testdns: %v", err)
	}
	pc, ln, err := listenPair()
	if err != nil {
		t.Fatalf("testdns: %v", err)
	}
	s.Addr = pc.LocalAddr().String()
	serve(t, &dns.Server{PacketConn: pc, Handler: s})
	serve(t, &dns.Server{Listener: ln, Handler: s})
	return s
}

func newServer(zone string) (*Server, error) {
	s := &Server{
		records: make(map[string][]dns.RR),
		names:   make(map[string]bool),
		rcodes:  make(map[rcodeKey]int),
	}
	zp := dns.NewZoneParser(strings.NewReader(zone), ".", "")
	zp.SetDefaultTTL(defaultTTL)
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		s.add(rr)
	}
	if err := zp.Err(); err != nil {
		return nil, fmt.Errorf("parse zone: %w", err)
	}
	return s, nil
}

// add files rr under its owner and marks the owner's ancestors as existing
// (empty non-terminals answer NODATA, not NXDOMAIN).
func (s *Server) add(rr dns.RR) {
	owner := strings.ToLower(rr.Header().Name)
	s.records[owner] = append(s.records[owner], rr)
	if soa, ok := rr.(*dns.SOA); ok {
		s.soas = append(s.soas, soa)
	}
	for off, end := 0, false; !end; off, end = dns.NextLabel(owner, off) {
		s.names[owner[off:]] = true
	}
}

// listenPair binds UDP and TCP on the same loopback port.
func listenPair() (net.PacketConn, net.Listener, error) {
	var lastErr error
	for range 10 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return nil, nil, err
		}
		ln, err := net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			return pc, ln, nil
		}
		pc.Close()
		lastErr = err
	}
	return nil, nil, fmt.Errorf("no loopback port free for both udp and tcp: %w", lastErr)
}

// serve runs srv until the test ends. It returns once srv is accepting.
func serve(t testing.TB, srv *dns.Server) {
	t.Helper()
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	done := make(chan error, 1)
	go func() { done <- srv.ActivateAndServe() }()
	select {
	case <-started:
	case err := <-done:
		t.Fatalf("testdns: serve: %v", err)
	}
	t.Cleanup(func() {
		srv.Shutdown()
		<-done
	})
}

// SetRcode makes queries for name and qtype answer rcode with no records.
// qtype dns.TypeNone matches every type; rcode dns.RcodeSuccess removes
// the override.
func (s *Server) SetRcode(name string, qtype uint16, rcode int) {
	key := rcodeKey{name: canonical(name), qtype: qtype}
	s.mu.Lock()
	defer s.mu.Unlock()
	if rcode == dns.RcodeSuccess {
		delete(s.rcodes, key)
		return
	}
	s.rcodes[key] = rcode
}

// SetAuthenticated marks names at or below zoneSuffix as DNSSEC-validated:
// answers whose question and records all lie there carry the AD bit when
// the query set DO or AD (RFC 6840 section 5.8).
func (s *Server) SetAuthenticated(zoneSuffix string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.secure = append(s.secure, canonical(zoneSuffix))
}

// Queries returns the number of queries served, over UDP and TCP.
func (s *Server) Queries() int { return int(s.queries.Load()) }

// ServeDNS answers one query; it implements dns.Handler.
func (s *Server) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	s.queries.Add(1)
	resp := s.respond(req)
	if _, udp := w.RemoteAddr().(*net.UDPAddr); udp {
		resp.Truncate(udpSize(req))
	}
	w.WriteMsg(resp)
}

func (s *Server) respond(req *dns.Msg) *dns.Msg {
	resp := new(dns.Msg)
	if len(req.Question) != 1 || req.Opcode != dns.OpcodeQuery {
		return resp.SetRcode(req, dns.RcodeFormatError)
	}
	resp.SetReply(req)
	resp.Authoritative = true
	resp.RecursionAvailable = true
	q := req.Question[0]
	if rcode, ok := s.forced(q); ok {
		resp.Rcode = rcode
	} else {
		s.resolve(resp, q)
		resp.AuthenticatedData = wantsAD(req) && s.authenticated(resp)
	}
	if opt := req.IsEdns0(); opt != nil {
		resp.SetEdns0(ednsBuffer, opt.Do())
	}
	return resp
}

func (s *Server) forced(q dns.Question) (int, bool) {
	name := canonical(q.Name)
	s.mu.RLock()
	defer s.mu.RUnlock()
	if rcode, ok := s.rcodes[rcodeKey{name, q.Qtype}]; ok {
		return rcode, true
	}
	rcode, ok := s.rcodes[rcodeKey{name, dns.TypeNone}]
	return rcode, ok
}

// resolve fills the answer for q, following CNAMEs within the zone.
func (s *Server) resolve(resp *dns.Msg, q dns.Question) {
	name := q.Name
	for range maxChain + 1 {
		rrs := s.records[canonical(name)]
		if found := ofType(rrs, q.Qtype); len(found) > 0 {
			resp.Answer = append(resp.Answer, renamed(found, name)...)
			return
		}
		cnames := ofType(rrs, dns.TypeCNAME)
		if len(cnames) == 0 {
			s.negative(resp, name)
			return
		}
		resp.Answer = append(resp.Answer, renamed(cnames[:1], name)...)
		name = cnames[0].(*dns.CNAME).Target
	}
	// Chain too long (or a loop): answer with the links so far, as
	// authoritative servers do, and let the client chase or give up.
}

// negative makes resp an NXDOMAIN or NODATA answer for name.
func (s *Server) negative(resp *dns.Msg, name string) {
	if !s.names[canonical(name)] {
		resp.Rcode = dns.RcodeNameError
	}
	if soa := s.soaFor(name); soa != nil {
		resp.Ns = append(resp.Ns, dns.Copy(soa))
	}
}

// soaFor returns the closest SOA at or above name, or nil.
func (s *Server) soaFor(name string) *dns.SOA {
	var best *dns.SOA
	for _, soa := range s.soas {
		if dns.IsSubDomain(soa.Hdr.Name, name) &&
			(best == nil || dns.CountLabel(soa.Hdr.Name) > dns.CountLabel(best.Hdr.Name)) {
			best = soa
		}
	}
	return best
}

// authenticated reports whether the question and every answer record lie
// under a suffix given to SetAuthenticated.
func (s *Server) authenticated(resp *dns.Msg) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if !s.isSecure(resp.Question[0].Name) {
		return false
	}
	for _, rr := range resp.Answer {
		if !s.isSecure(rr.Header().Name) {
			return false
		}
	}
	return true
}

// isSecure must be called with s.mu held.
func (s *Server) isSecure(name string) bool {
	for _, suffix := range s.secure {
		if dns.IsSubDomain(suffix, canonical(name)) {
			return true
		}
	}
	return false
}

func wantsAD(req *dns.Msg) bool {
	opt := req.IsEdns0()
	return req.AuthenticatedData || (opt != nil && opt.Do())
}

// udpSize is the largest UDP answer the client accepts (RFC 6891 6.2.5).
func udpSize(req *dns.Msg) int {
	if opt := req.IsEdns0(); opt != nil {
		return max(int(opt.UDPSize()), dns.MinMsgSize)
	}
	return dns.MinMsgSize
}

func ofType(rrs []dns.RR, qtype uint16) []dns.RR {
	var out []dns.RR
	for _, rr := range rrs {
		if rr.Header().Rrtype == qtype {
			out = append(out, rr)
		}
	}
	return out
}

// renamed copies rrs with the owner spelled as asked (clients may vary
// case, RFC 4343).
func renamed(rrs []dns.RR, owner string) []dns.RR {
	out := make([]dns.RR, len(rrs))
	for i, rr := range rrs {
		out[i] = dns.Copy(rr)
		out[i].Header().Name = owner
	}
	return out
}

func canonical(name string) string { return strings.ToLower(dns.Fqdn(name)) }
