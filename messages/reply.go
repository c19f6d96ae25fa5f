package messages

import "fmt"

// Reply is an SMTP reply, or a local error rendered as one, as it is kept
// in the journal and written to the delivery log.
type Reply struct {
	Code     int    `json:"code,omitempty"`     // 250, 451, 550...; 0 when there was no SMTP reply (a network error)
	Enhanced string `json:"enhanced,omitempty"` // "5.1.1", or ""
	Text     string `json:"text,omitempty"`     // the reply text, or the error
	Class    string `json:"class,omitempty"`    // short error class for strategies: "", "connection", "dns", "timeout", "tls", "rcpt", "data", ...
}

// Temporary reports whether the reply asks for a retry: a 4xx reply, or no
// reply at all (an unknown error is temporary).
func (r Reply) Temporary() bool { return r.Code == 0 || (r.Code >= 400 && r.Code < 500) }

// Success reports a 2xx reply.
func (r Reply) Success() bool { return r.Code >= 200 && r.Code < 300 }

func (r Reply) String() string {
	switch {
	case r.Code == 0:
		return r.Text
	case r.Enhanced != "":
		return fmt.Sprintf("%d %s %s", r.Code, r.Enhanced, r.Text)
	}
	return fmt.Sprintf("%d %s", r.Code, r.Text)
}
