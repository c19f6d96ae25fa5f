// Package maildir delivers mail into local Maildir mailboxes (the classic
// format of https://cr.yp.to/proto/maildir.html) for mtad's "local" route.
//
// A recipient user@domain maps to the mailbox directory
// <Root>/<domain>/<user>: the domain lower-cased, the local part exactly as
// given. Operators create mailbox directories; Deliver never creates a domain
// or mailbox directory, only the tmp/, new/ and cur/ subdirectories inside
// an existing mailbox. Symbolic links placed by the operator are followed.
//
// The contract:
//
//   - Deliver returns exactly one messages.Reply per recipient, in order.
//     250 2.0.0 means the copy is durable: its file was written to tmp/,
//     fsynced, hard-linked into new/, and new/ was fsynced (as was the
//     mailbox directory when Deliver created new/), all before Deliver
//     returned. A crash after a 250 cannot lose that copy.
//   - 550 5.1.1 (no such mailbox or domain directory) and 550 5.1.3 (a local
//     part or domain that is not a safe single path element) are permanent.
//     452 4.2.2 (ENOSPC or EDQUOT), 451 4.3.0 (any other I/O error), 451
//     4.3.0 "delivery interrupted" (ctx done) and 451 4.3.0 "message body
//     unreadable" (Class journal: the body failed to read, or read short or
//     long of its size) are temporary. A copy that got a temporary reply is
//     removed from tmp/ and new/ where possible, so a retry duplicates at
//     worst what a crash could.
//   - Reply texts never contain paths or other local detail. That goes into
//     the returned error, errors.Join of one *Error per recipient that met an
//     I/O error (reach them with errors.As), plus one error naming the cause
//     when ctx ended the call early. The error is for the log; the replies
//     are the outcome: a 250 may come with an *Error when only the cleanup of
//     tmp/ failed.
//   - ctx is checked before each recipient; once it is done, every recipient
//     not yet attempted gets 451 4.3.0 "delivery interrupted", except that an
//     address refused on its syntax alone still gets 550 5.1.3 and a repeat
//     of an attempted mailbox still shares its reply. A write in progress is
//     not interrupted.
//   - Recipients that map to the same mailbox directory (the same address
//     twice, or domains that differ only in case) get one copy, with the
//     Delivered-To of the first, and all share its reply.
//   - Each copy starts with "Return-Path: <sender>" (RFC 5321 section 4.4,
//     "<>" for the null reverse-path) and "Delivered-To: <recipient>",
//     followed by the body byte for byte. The two header lines end with
//     CRLF unless the body's first line ends with a bare LF.
//   - The body streams: Deliver reads it once, into the first copy it
//     writes, and reads later copies back from that copy's file, holding
//     no more than two 32 KiB buffers of it.
//
// File names follow the Maildir convention,
// "<seconds>.M<microseconds>P<pid>Q<counter>.<host>,S=<size>", where the
// counter is shared by every Store in the process, host has '/' and ':'
// written as \057 and \072, and size is the file's size in bytes. Files are
// created with mode 0600 (O_EXCL, so a name is never reused) and directories
// with 0700.
//
// Deliver blocks on disk; call it from a goroutine that may block, never on
// an actor's own goroutine. A Store is safe for concurrent use.
package maildir
