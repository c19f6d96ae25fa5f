// Package mtasts finds and caches the MTA-STS policy (RFC 8461) of a
// recipient domain: the TXT record at _mta-sts.<domain>, then the policy
// at https://mta-sts.<domain>/.well-known/mta-sts.txt. Deciding what a
// policy means for a delivery (enforce, testing, mta-sts = require) is the
// caller's business; this package only says what the policy is.
//
// The contract of Fetcher.Get:
//   - (policy, nil): the domain has a policy, freshly fetched or cached. A
//     policy whose mode is none is returned like any other.
//   - (nil, nil): the domain has no MTA-STS: _mta-sts.<domain> does not
//     exist, has no TXT record, has no "v=STSv1" record, has several, or
//     has an invalid one (section 3.1), and nothing unexpired is cached.
//     Under mta-sts = require the caller fails permanently.
//   - (nil, *Error): a policy was announced or looked for and could not be
//     had. Error.Temporary says whether trying later may help; Error.Reason
//     is the TLSRPT result type (RFC 8460 section 4.3.2.2).
//   - A cached, unexpired policy wins over every failure: the TXT lookup
//     failing, the record vanishing, or a new id whose policy cannot be
//     fetched (section 5.1). The cache is keyed by domain, holds at most
//     CacheSize policies, and a policy expires max_age after its fetch.
//   - The whole fetch (policy host lookup, connect, TLS, HTTP, body) is
//     bounded by Timeout, as is the TXT lookup. Redirects are not
//     followed; only 200 with Content-Type text/plain and a body of at
//     most MaxBody bytes is read (section 3.3). The certificate must be
//     valid for mta-sts.<domain> under RootCAs (section 3.3, RFC 6125).
//
// Failures, as *Error:
//
//	TXT lookup failed (SERVFAIL, timeout)     temporary  sts-policy-fetch-error
//	policy host does not exist                permanent  sts-policy-fetch-error
//	connect, TLS alert, timeout, reset        temporary  sts-policy-fetch-error
//	certificate not valid for the host        temporary  sts-webpki-invalid
//	HTTP 5xx, 408, 429                        temporary  sts-policy-fetch-error
//	any other status but 200 (404, 3xx)       permanent  sts-policy-fetch-error
//	not text/plain, too large, syntax error   permanent  sts-policy-invalid
//
// A Fetcher is safe for concurrent use; its fields must not change after
// the first Get. Policies it returns are shared and must not be modified.
package mtasts
