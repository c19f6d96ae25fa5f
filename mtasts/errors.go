package mtasts

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"

	"github.com/mtad/mtad/resolver"
)

// Reasons, as in Error.Reason: the TLSRPT result types of MTA-STS policy
// failures (RFC 8460 section 4.3.2.2).
const (
	ReasonFetchError = "sts-policy-fetch-error" // the policy could not be had
	ReasonInvalid    = "sts-policy-invalid"     // it was had but is not a valid policy
	ReasonWebPKI     = "sts-webpki-invalid"     // the policy host's certificate did not verify
)

// Sentinels, reached with errors.Is through an *Error.
var (
	// ErrStatus: the policy host answered something other than 200.
	ErrStatus = errors.New("mtasts: policy host did not answer 200")
	// ErrContentType: the policy was not served as text/plain.
	ErrContentType = errors.New("mtasts: policy is not text/plain")
	// ErrTooLarge: the policy is longer than Fetcher.MaxBody.
	ErrTooLarge = errors.New("mtasts: policy too large")
)

// Error is a failure to get a domain's policy. Reach it with errors.As.
type Error struct {
	Temporary bool
	Reason    string // Reason* constant
	Err       error  // the cause
}

func (e *Error) Error() string { return "mtasts: " + e.Reason + ": " + e.Err.Error() }

func (e *Error) Unwrap() error { return e.Err }

func temporary(reason string, err error) *Error {
	return &Error{Temporary: true, Reason: reason, Err: err}
}

func permanent(reason string, err error) *Error {
	return &Error{Reason: reason, Err: err}
}

// classify turns a failed HTTPS exchange into an *Error: a certificate
// that did not verify is sts-webpki-invalid, a policy host that does not
// exist is permanent, anything else is temporary.
func classify(err error) *Error {
	switch {
	case certificateError(err):
		return temporary(ReasonWebPKI, err)
	case notFound(err):
		return permanent(ReasonFetchError, err)
	}
	return temporary(ReasonFetchError, err)
}

func certificateError(err error) bool {
	var (
		verification *tls.CertificateVerificationError
		authority    x509.UnknownAuthorityError
		hostname     x509.HostnameError
		invalid      x509.CertificateInvalidError
	)
	return errors.As(err, &verification) || errors.As(err, &authority) ||
		errors.As(err, &hostname) || errors.As(err, &invalid)
}

// notFound reports a DNS answer that a name does not exist or has no
// records: a permanent *resolver.Error, or a *net.DNSError saying so.
func notFound(err error) bool {
	var re *resolver.Error
	if errors.As(err, &re) {
		return !re.Temporary
	}
	var de *net.DNSError
	return errors.As(err, &de) && de.IsNotFound
}
