package resolver

import "errors"

// Sentinels for errors.Is on an *Error's Err.
var (
	ErrNoSuchDomain  = errors.New("domain does not exist")
	ErrNullMX        = errors.New("domain does not accept mail (null mx)")
	ErrNoAddress     = errors.New("host has no address")
	ErrInvalidName   = errors.New("invalid domain name")
	ErrServerFailure = errors.New("nameserver failure")
	ErrCNAMEChain    = errors.New("cname chain too long")
)

// Error is a failed lookup, classified for delivery: whether to retry, and
// the SMTP code and enhanced status to report.
type Error struct {
	Temporary bool
	Code      int    // 451, 550, 556
	Enhanced  string // "4.4.3", "5.1.2", "5.1.10"
	Name      string // the domain or host looked up
	Err       error  // the cause
}

func (e *Error) Error() string { return "lookup " + e.Name + ": " + e.Err.Error() }

func (e *Error) Unwrap() error { return e.Err }

// temporary classifies a failure to get an answer (RFC 3463: 4.4.3,
// directory server failure).
func temporary(name string, err error) *Error {
	return &Error{Temporary: true, Code: 451, Enhanced: "4.4.3", Name: name, Err: err}
}

// notFound classifies a name that does not exist or has no usable records
// (RFC 3463: 5.1.2, bad destination system address).
func notFound(name string, err error) *Error {
	return &Error{Code: 550, Enhanced: "5.1.2", Name: name, Err: err}
}

// nullMX classifies a domain that declares it accepts no mail (RFC 7505
// section 4.1: 556 5.1.10).
func nullMX(name string) *Error {
	return &Error{Code: 556, Enhanced: "5.1.10", Name: name, Err: ErrNullMX}
}
