// Package tlsrpt writes SMTP TLS reports (RFC 8460) on the sending side: a
// Recorder counts the outcome of every TLS negotiation with a recipient's
// MX hosts, Take turns one UTC day of counts into one Report per policy
// domain, and a Sender looks up each domain's TLSRPT record and delivers
// its report by mail or HTTPS POST.
//
// The contract:
//
//   - Record takes a mutex and updates maps; it never does I/O and never
//     waits on a writer: Save and SaveFile copy the counts under the mutex
//     and write them after releasing it.
//   - Counts are bounded: at most MaxDomains policy domains per day,
//     MaxPolicies policies per domain and MaxDetails failure-detail groups
//     per policy. A failure beyond MaxDetails groups is still counted, in
//     the policy's summary and in one last group (result-type
//     "validation-failure", failure-reason-code "other"); a result for a
//     domain or policy beyond the other bounds is not reported at all and
//     is counted by Dropped.
//   - A report covers one whole UTC day (RFC 8460 section 4.1, 00:00:00 to
//     23:59:59) and is taken once: Take removes the day, and Record drops
//     (and counts in Dropped) a result for a day that is not later than the
//     last day taken, so two reports never share a report-id. Take a day
//     once it is over.
//   - Report output is a pure function of its counts: policies and failure
//     details are sorted, so the same counts give the same JSON and, for
//     the same now, the same message.
//   - Nothing from the network can add a header field or a MIME part: the
//     policy domain and the submitter must be host names, every address is
//     parsed and rewritten, and the report travels gzipped in base64.
//   - ParseTXT follows RFC 8460 section 3: records that do not start with
//     "v=TLSRPTv1" are discarded, and anything but exactly one remaining
//     record means the domain does not do TLSRPT (ErrNoRecord,
//     ErrMultipleRecords).
//   - Sender.Send tries every report and every rua and returns all that
//     failed, joined; a domain without a TLSRPT record is skipped without
//     an error. Each DNS lookup and each HTTPS POST is bounded by
//     Sender.Timeout.
//
// The caller's part: a report message must be delivered even when TLS to
// the recipient fails, and its own delivery must not be recorded (RFC 8460
// section 3); reports sent by mail must carry a DKIM signature of the
// reporting domain (RFC 8460 section 5.3), which is the signing step of the
// daemon's queue, not this package's. The https rua comes from the
// recipient's DNS: a daemon that must not reach its own network through it
// gives Sender an http.Client whose dialer refuses private addresses.
//
// Not done: the receiving-mx-helo and additional-information fields of a
// failure detail, and reports over a period other than a day.
package tlsrpt
