// Package inject admits mail posted over HTTP: the same admission rules and
// the same durability as SMTP submission (package submission), for
// programs that would rather POST than speak SMTP. The caller mounts the
// Handler behind the management API's bearer token, so an injection is
// authenticated: it may relay to any domain.
//
// The contract:
//
//   - A 202 is written only after Acceptor.Accept returned nil, that is
//     after the message is durable. Every other answer means nothing was
//     journaled, and the client still owns the message. A request whose
//     client went away before Accept is not journaled.
//   - The body handed to Accept is the message with a Received header
//     prepended and every line ending CRLF: a raw message has its bare LF
//     and bare CR rewritten as SMTP submission does
//     (submission.NormalizeEOL, the smuggling defence), a composed one is
//     written with CRLF. It ends with CRLF, as a DATA body does.
//   - Answers carry the reply SMTP would have given ("code", "enhanced")
//     when one fits, and never internal detail: an Acceptor error that is
//     not an *smtp.SMTPError is answered 503 (451 4.3.0) and logged with
//     its msgid.
//
// Two request forms, by Content-Type:
//
//   - message/rfc822: the body is the message as it is; the envelope is in
//     request headers: Mtad-From (required, empty or "<>" for the null
//     reverse-path), Mtad-To (repeatable, comma-separated), Mtad-Notify
//     (RFC 3461 syntax, for every recipient), Mtad-Ret, Mtad-Envid,
//     Mtad-Priority and Mtad-Meta-<key> (metadata; the key lower-cased).
//     Any other Mtad- header is refused, Mtad-Requiretls included:
//     REQUIRETLS (RFC 8689) needs a TLS submission path, which HTTP
//     injection is not.
//   - application/json: {"envelope": {...}, "raw": "..."} or
//     {"envelope": {...}, "message": {...}}. Unknown fields, and Mtad-
//     request headers, are refused. envelope.to holds addresses or
//     {"addr", "notify", "orcpt"} objects; with a message, envelope.from
//     and envelope.to default to its From and its To, Cc and Bcc.
//
// A message is composed as a MIME tree (see message.tree): text/plain,
// multipart/alternative for text and html, multipart/related around the
// html for inline parts with a content_id, multipart/mixed for
// attachments. Text is quoted-printable UTF-8, attachments base64 in
// 76-column lines; header text that is not ASCII is RFC 2047 encoded, and
// header fields are folded. Date, Message-ID, MIME-Version, the address
// fields, Subject and Content-* are mtad's to write: message.headers may
// not set them, nor hold a line break or control character.
//
// Admission runs in this order, and the first refusal is the answer:
// request syntax and addresses (400), at least one recipient and at most
// Config.MaxRecipients (400), metadata bounds (400), Config.TakeMessage
// (429 for 4xx), size (413, 552 5.3.4), then Config.CheckRcpt for each
// recipient: refused recipients are reported one by one and left out of
// the envelope, and when none is left nothing is journaled (422). Then
// Accept: an *smtp.SMTPError is answered 429 (4xx, with Retry-After) or
// 422 (5xx).
//
// Addresses are SMTP paths (a@example.com or <a@example.com>) checked by
// submission.CheckAddress; UTF-8 is allowed and sets Envelope.SMTPUTF8,
// as does a header section that holds UTF-8 (RFC 6532). A message with
// any 8-bit byte is Envelope.Body 8BITMIME, else 7BIT. Duplicate
// recipients are kept once, with their first parameters.
//
// Concurrency: ServeHTTP may be called concurrently; Accept and the hooks
// are called from the request's goroutine.
package inject
