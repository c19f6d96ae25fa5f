// Package outbound speaks one outbound SMTP (RFC 5321) or LMTP (RFC 2033)
// session: Dial connects to the first target that greets it and accepts
// EHLO, then Deliver runs one transaction after another on that connection,
// and Close says QUIT.
//
// The contract:
//
//   - Deliver returns exactly one messages.Reply per recipient, in order. A
//     2xx reply means the server took the message for that recipient; a 5xx
//     reply is permanent; anything else, including Code 0, is temporary.
//   - Every failure is an *Error (errors.As): temporary or permanent, with
//     the server's code and enhanced status when there was a reply, the
//     stage it happened at and a class for strategies. Dial's error is
//     permanent only when every target failed permanently (a 5xx greeting
//     or EHLO, TLS required and not offered or refused with a 5xx, a
//     permanent verdict of VerifyPeer).
//   - Deliver returns an error only when the connection is dead (broken,
//     timed out, 421, or ctx done); the Conn is then closed, Alive is false
//     and every later Deliver fails at once with ErrClosed.
//   - Each network step has its own deadline from Timeouts, and a done ctx
//     closes the connection, so no call blocks past its deadline or its ctx.
//   - A Conn belongs to one goroutine at a time; calls may block.
//
// The body streams: Deliver reads Tx.Body once, as it sends DATA,
// dot-stuffing on the fly, and holds no more of it than its 32 KiB buffers.
// A body that cannot be read to its end (a read error, or fewer or more
// bytes than Tx.Size) is never sent as complete: the connection is closed
// before the final dot, and every recipient gets a temporary reply of
// Class journal.
//
// When the server offers PIPELINING (RFC 2920), MAIL, every RCPT and DATA
// leave in one write and their replies are read in order; otherwise, or
// past maxPipelined recipients, one command waits for its reply before the
// next. The package speaks the protocol itself over net/textproto; go-smtp
// provides only its error type.
//
// After the first EHLO, Dial applies Options.STARTTLS (RFC 3207): with
// TLSOptional, the zero value, it sends STARTTLS when the server
// advertises it; with TLSRequire it also fails a target that does not;
// with TLSDisable it never does. After the handshake it calls
// Options.VerifyPeer, if set, then says EHLO again and keeps only those
// keywords (section 4.2). The outcomes, all at Stage starttls:
//
//	situation                                  result
//	STARTTLS not advertised, TLSOptional       plaintext
//	STARTTLS not advertised, TLSRequire        permanent 550 5.7.10, Class tls (ErrTLSNotOffered)
//	4xx/5xx but 421 to STARTTLS, TLSOptional   plaintext on the same connection
//	4xx/5xx to STARTTLS, TLSRequire; 421       that reply, temporary or permanent, Class tls
//	handshake failed, certificate not          temporary, Code 0, 4.7.0, Class tls; the
//	  verified, TLS timeout, no or another       connection is closed, no plaintext fallback
//	  reply, data after the 220 (any mode)       on it (a retry may disable STARTTLS)
//	VerifyPeer returned an *Error              that error (its class, e.g. "dane")
//	VerifyPeer returned another error          temporary, Code 0, 4.7.0, Class tls
//
// Dial moves on from a target that fails so, as after a failed EHLO. A
// failure the caller's ctx caused keeps Class canceled or timeout.
// ImplicitTLS runs the same handshake and
// VerifyPeer before the greeting, with Stage connect, and never sends
// STARTTLS. Conn.TLS and Conn.Verified say what the session got: a
// REQUIRETLS transaction (RFC 8689, Tx.RequireTLS) needs TLS, a verified
// peer and REQUIRETLS in the EHLO after the handshake, and is otherwise
// refused with 550 5.7.30 before anything is sent.
//
// With Options.Auth, Dial authenticates each session once, right after its
// last EHLO (RFC 4954), the one after STARTTLS when there was one, with
// the first allowed mechanism the server lists in its AUTH keyword: PLAIN
// (RFC 4616), sent with its initial response, or LOGIN. Every AUTH failure
// fails Dial for that target and is temporary, whatever the server's code:
// no common mechanism or no AUTH at all (451 4.7.0, ErrNoMechanism, with
// what the server offered in the text), a rejection (535 and the like, its
// text kept), a broken exchange. A message must not bounce because of our
// credentials or a relay's change; an operator fixes those. Credentials
// never appear in an error: what we sent is cut out of the server's words
// too. AUTH goes over whatever connection the session has, plaintext
// included, since relays on private networks take PLAIN without TLS:
// whether credentials may cross a given connection is the caller's policy
// (ImplicitTLS, TLSRequire, or Auth only for the targets it trusts).
//
// Not done yet: CHUNKING/BDAT (a BINARYMIME body is refused), and 8-bit or
// SMTPUTF8 downgrades (such transactions are refused when the server lacks
// the extension).
package outbound
