package dane

import (
	"errors"
	"fmt"
)

// TLSRPT result types (RFC 8460 section 4.3) for Error.Reason.
const (
	ReasonTLSAInvalid        = "tlsa-invalid"
	ReasonDNSSECInvalid      = "dnssec-invalid"
	ReasonDANERequired       = "dane-required"
	ReasonValidationFailure  = "validation-failure"
	ReasonCertificateExpired = "certificate-expired"
	ReasonHostMismatch       = "certificate-host-mismatch"
)

// Sentinels for errors.Is on an *Error's Err.
var (
	ErrNoCertificates = errors.New("server presented no certificate")
	ErrNoMatch        = errors.New("no TLSA record matches the certificate chain")
	ErrHostMismatch   = errors.New("certificate names neither the mx host nor the domain")
	ErrRequired       = errors.New("dane required but no usable DNSSEC-validated TLSA records")
)

// Error is a DANE failure, classified for delivery: whether to retry, the
// SMTP code and enhanced status to report, and the TLSRPT result type.
type Error struct {
	Temporary bool
	Code      int    // 451 or 550
	Enhanced  string // "4.7.5" or "5.7.5"
	Reason    string // a TLSRPT result type: ReasonValidationFailure...
	Err       error  // the cause
}

func (e *Error) Error() string { return "dane: " + e.Err.Error() }

func (e *Error) Unwrap() error { return e.Err }

// Required is the failure of an MX host that has no DANE policy when the
// configuration requires one: permanent, dane-required.
func Required(mxHost string) *Error {
	return permanent(ReasonDANERequired, fmt.Errorf("%s: %w", mxHost, ErrRequired))
}

// temporary classifies a failure worth retrying (RFC 3463: 4.7.5,
// cryptographic failure).
func temporary(reason string, err error) *Error {
	return &Error{Temporary: true, Code: 451, Enhanced: "4.7.5", Reason: reason, Err: err}
}

// permanent classifies a failure that retrying will not fix (RFC 3463:
// 5.7.5, cryptographic failure).
func permanent(reason string, err error) *Error {
	return &Error{Code: 550, Enhanced: "5.7.5", Reason: reason, Err: err}
}
