// Package testdns runs a real DNS server on loopback for tests. It answers
// UDP and TCP queries on the same 127.0.0.1 port from a zone given as
// RFC 1035 master-file text, and stops when the test ends.
//
// The server is authoritative for every name in the zone text (and the
// names above them) and answers with the semantics a resolver meets on the
// internet:
//   - the records of the asked type, with the AA bit;
//   - NXDOMAIN when nothing exists at or below the name;
//   - NOERROR with an empty answer (NODATA) when the name exists with other
//     types, or only has names below it;
//   - a CNAME at the name, chased while its target is in the zone (at most
//     8 links; a name that does not exist at the end of the chain gives
//     NXDOMAIN, RFC 6604);
//   - negative answers carry the zone's SOA in the authority section when
//     the zone text has one above the name (RFC 2308);
//   - the TC bit on a UDP answer larger than 512 bytes, or than the
//     client's EDNS0 buffer, so clients retry over TCP;
//   - an OPT record echoing DO when the query had one.
//
// Tests can force an rcode for a name and type (SetRcode), mark a subtree
// as DNSSEC-validated so answers carry the AD bit (SetAuthenticated), and
// count the queries served (Queries). All methods are safe for concurrent
// use.
package testdns
