// Package dane decides and enforces DANE for SMTP (RFC 7672): whether the
// TLSA records of an MX host bind its TLS certificate, and whether the
// certificate chain a server presented satisfies them.
//
// Lookup is called once per MX host, before connecting. It looks up
// _<port>._tcp.<mx host> only when the MX RRset (or, for an implicit MX,
// the host's addresses) was DNSSEC-authenticated, and decides:
//
//	MX RRset not authenticated              -> nil, nil (no DANE; no query)
//	TLSA lookup failed (SERVFAIL, timeout)  -> temporary *Error, even when
//	                                           DANE is only opportunistic
//	TLSA answer not authenticated           -> nil, nil (insecure: no DANE)
//	authenticated NXDOMAIN or NODATA        -> nil, nil
//	authenticated, none usable              -> nil, nil
//	authenticated, some usable              -> *Policy with the usable ones
//
// The first row is tighter than RFC 7672 section 2.2.1, which allows DANE
// with the hosts of an insecure MX RRset.
//
// A record is usable when its usage is DANE-TA(2) or DANE-EE(3) (PKIX-TA(0)
// and PKIX-EE(1) are unusable for SMTP, RFC 7672 section 3.1.3), its
// selector is Cert(0) or SPKI(1), its matching type is Full(0), SHA2-256(1)
// or SHA2-512(2), and its data has the length that matching type implies
// (a malformed record is unusable, RFC 7671). A nil policy means no DANE:
// under dane=require the caller fails the host with Required.
//
// Policy.Verify checks the server's chain after the handshake (RFC 7672
// section 3.1): a DANE-EE(3) record matching the leaf certificate
// authenticates the server, whatever the names and dates in it; otherwise
// a DANE-TA(2) record matching a certificate of the chain (or, for a full
// certificate in the record, that certificate) makes it a trust anchor,
// and the leaf must chain to it, be within its validity period, allow
// server authentication, and name the MX host or the recipient domain
// (RFC 7672 section 3.2.2; DNS subject alternative names, a wildcard only
// as the whole left-most label).
//
// Every failure is an *Error, reached with errors.As, that says whether it
// is temporary and carries the SMTP code, the enhanced status and the
// TLSRPT result type (RFC 8460 section 4.3). RFC 7672 mandates no status
// codes; like Postfix we use X.7.5, cryptographic failure (RFC 3463):
//
//	situation                               temp  code  status  Reason
//	TLSA lookup failed                      yes   451   4.7.5   dnssec-invalid
//	TLSA name invalid                       no    550   5.7.5   tlsa-invalid
//	server presented no certificate         yes   451   4.7.5   validation-failure
//	no record matches the chain             no    550   5.7.5   validation-failure
//	anchored chain does not verify          no    550   5.7.5   validation-failure
//	anchored chain, leaf or CA expired      no    550   5.7.5   certificate-expired
//	anchored chain, leaf names neither host no    550   5.7.5   certificate-host-mismatch
//	DANE required, none found (Required)    no    550   5.7.5   dane-required
//
// Lookup and Verify keep no state and are safe for concurrent use.
package dane
