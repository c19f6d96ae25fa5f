// Package submission is mtad's SMTP submission listener, built on go-smtp.
// It owns admission for mail that arrives over SMTP: who may send where,
// size and recipient limits, address syntax, and the shape of the stored
// body; it hands every admitted message to an Acceptor and owns nothing
// after that.
//
// The contract:
//
//   - The 250 reply to DATA (or BDAT LAST) is written only after
//     Acceptor.AcceptBody returned nil, that is after the message is
//     durable.
//     Every other outcome is a 4xx or 5xx reply, and the client still owns
//     the message. Nothing else is ever acknowledged.
//   - No open relay: a recipient outside Config.LocalDomains is accepted
//     only from a client in Config.TrustedNetworks or one that
//     authenticated; others get 554 5.7.1.
//   - The body written to the Acceptor's BodyWriter is the message as
//     received, dot-unstuffed, with every line ending rewritten to CRLF
//     (see normalizeEOL and eolWriter: this is the SMTP smuggling defence)
//     and a Received header first. DATA ends only at <CRLF>.<CRLF>. The
//     body streams, a read at a time: a session holds no more of it than
//     a buffer, whatever its size. A message refused or cut short is
//     aborted (BodyWriter.Abort).
//   - Replies never carry internal detail: an Acceptor error that is not an
//     *smtp.SMTPError becomes 451 4.3.0 and is logged with its msgid.
//
// TLS: with Config.TLSConfig, Serve offers STARTTLS (RFC 3207) and
// ServeTLS serves implicit TLS (RFC 8314). STARTTLS ends the session:
// nothing from before it (EHLO name, an open transaction, commands
// pipelined after STARTTLS) survives, and the client starts over with
// EHLO. The Received header says ESMTPS (UTF8SMTPS) for mail received
// over TLS (RFC 3848). TLS sessions offer REQUIRETLS (RFC 8689); the MAIL
// parameter sets Envelope.RequireTLS, and is refused in clear with 530
// 5.7.10. The "TLS-Required: No" header field of RFC 8689 is not
// supported: it stays in the message as it is, and mtad's TLS policies
// (MTA-STS, DANE) apply to such a message as to any other.
//
// AUTH (RFC 4954): with Config.Users, TLS sessions offer AUTH PLAIN and
// LOGIN; in clear AUTH is not offered and answered 538 5.7.11. Passwords
// are checked against bcrypt hashes, in a time that does not tell whether
// the user exists. Success is 235 2.7.0: the session may relay anywhere,
// its messages have Envelope.Source "authenticated" and a Received header
// "with ESMTPSA", and count against Limits.MessagesPerUser. A failure is
// 535 5.7.8 after Config.AuthFailDelay; after Config.AuthLockout.Failures
// of them within its Window, AUTH from that client address (IPv6: its
// /64) is answered 454 4.7.0 for its Duration, even with the right
// password, and a success does not clear the count. A second AUTH, or one
// inside a transaction, is 503 5.5.1. Successes and failures are logged at
// info with the user name, never the password.
//
// Admission limits (Config.Limits): connections open at once per client
// address, checked as a connection is accepted, before the greeting (421
// 4.7.0, then close; the slot is given back when the connection closes,
// however it closes); and transactions per period per client address, per
// envelope sender and per authenticated user, counted at MAIL once its
// other checks passed (451 4.7.1, and the session goes on). Clients in
// Limits.Exempt are not limited. Refusals are logged at info.
//
// Concurrency: a Server serves any number of listeners at once, each
// connection on its own go-smtp goroutine, so AcceptBody is called
// concurrently. Shutdown stops accepting at once, says 421 4.3.2 to idle
// sessions and lets open transactions (MAIL to the end of DATA) finish
// until its context expires, then closes everything.
package submission
