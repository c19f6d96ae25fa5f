// Package resolver looks up what outbound delivery needs from the DNS: the
// MX hosts of a recipient domain, the addresses of a host, the TLSA
// records of a TLS service (DANE) and TXT records (MTA-STS, TLSRPT). It
// talks to the configured recursive nameservers with miekg/dns and owns no
// state but a small cache of their answers.
//
// The contract:
//   - Every error a lookup returns is an *Error, reached with errors.As,
//     that says whether it is temporary and carries the SMTP code and
//     enhanced status to report: 550 5.1.2 when the domain or host does
//     not exist or has no address, 556 5.1.10 for a null MX (RFC 7505),
//     451 4.4.3 for everything else (SERVFAIL, REFUSED, timeouts, network
//     errors, CNAME chains longer than 8 links). An unknown failure is
//     temporary.
//   - LookupMX returns hosts sorted by preference, equal preferences in
//     random order (RFC 5321 section 5.1), and the implicit MX (the domain
//     itself, Implicit set) when the domain exists without MX records.
//   - LookupIP returns addresses in the order asked for; a host that fails
//     temporarily in one family but has addresses in the other gets those
//     addresses. IP literals are returned without a query.
//   - LookupTLSA treats NXDOMAIN and NODATA as an empty result, not an
//     error: its Authenticated flag then says whether the denial was
//     validated, which is what DANE needs (RFC 7672 section 2.2). LookupTXT
//     returns NODATA as an empty result and NXDOMAIN as 550 5.1.2.
//   - CNAMEs are followed, at most 8 links.
//   - Queries go over UDP with EDNS0 (4096-byte buffer) and the DO bit, and
//     over TCP when the answer is truncated. A query that fails moves to
//     the next nameserver, for Attempts rounds through the list, each try
//     bounded by Timeout and the caller's context.
//   - The Full variants, LookupTLSA and LookupTXT report whether every
//     answer used carried the AD bit (the nameserver validated it with
//     DNSSEC), for DANE. The AD bit is only as trustworthy as the path to
//     the nameserver.
//   - Answers are cached per name and type for their TTL (clamped to
//     [5s, 1h]; negative answers to the SOA minimum, at most 5m, 1m when
//     there is no SOA), up to Config.CacheSize entries.
//
// A Resolver is safe for concurrent use.
package resolver
