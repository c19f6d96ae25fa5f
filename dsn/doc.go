// Package dsn writes delivery status notifications: the multipart/report
// messages (RFC 6522) that tell a sender what became of a message, with a
// message/delivery-status part (RFC 3464) for programs and a plain text part
// for people. Nothing here does I/O; the queue decides when a DSN is due and
// sends what Build returns.
//
// The contract:
//
//   - Wanted applies the NOTIFY rules of RFC 3461 section 4.1; Build reports
//     on exactly the recipients it is given, so the caller filters with
//     Wanted first.
//   - Build never reports on a message with a null reverse-path, and its
//     output is sent from the null reverse-path to Envelope.From (RFC 3464
//     section 2), with SMTPUTF8 when the original had it and BODY=8BITMIME
//     when the original was not 7BIT: the DSN needs no more than the
//     original did.
//   - Build is a pure function of a Report with Now set: the same Report
//     gives the same bytes (the boundary and Message-ID come from
//     Envelope.ID, Now and the recipients), so its output can be compared
//     with golden files.
//   - Nothing from the network can add a header field or a MIME part:
//     reply text is stripped of control characters, ENVID, ORCPT and
//     addresses are written as xtext (RFC 3461 section 4) or utf-8-addr-xtext
//     (RFC 6533 section 3) when they hold what a field cannot, and the
//     boundary is checked against everything it encloses.
//   - A local error (a Reply without an SMTP code) is described in the
//     human part by its class only: its text, which may name our own files
//     or addresses, is not shown. A Reply with a code is shown as it is, in
//     the Diagnostic-Code field and the human part.
//
// An SMTPUTF8 message with a non-ASCII address gets the internationalized
// media types of RFC 6533 (message/global-delivery-status, message/global,
// message/global-headers), 8bit, for a return path that supports SMTPUTF8.
//
// Not done: the 7-bit downgrade of such a DSN for a return path without
// SMTPUTF8 (RFC 6533 section 4.5), and the Received-From-MTA and
// Final-Log-ID fields.
package dsn
