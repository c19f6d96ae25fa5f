package expression

import (
	"time"

	"github.com/mtad/mtad/messages"
)

// For is the context of a message and one of its recipients (rc may be
// nil: message-level context only). Callers add what only they know
// (queue_name, mx, remote_ip...).
func For(env *messages.Envelope, rc *messages.Recipient) Env {
	e := Env{
		Sender: env.From, SenderDomain: messages.Domain(env.From),
		Recipients: len(env.Rcpts), Priority: env.Priority, Size: env.Size,
		Source: env.Source, ReceivedFrom: env.ReceivedFromIP,
		QueueAge: int64(time.Since(env.Arrival) / time.Second),
		Metadata: env.Metadata, Tenant: env.Metadata["tenant"], Campaign: env.Metadata["campaign"],
	}
	if rc != nil {
		e.Rcpt, e.RcptDomain = rc.Addr, messages.Domain(rc.Addr)
		e.RetryNum, e.NotifyNum = rc.Attempts, rc.NotifyNum
		e.LastError, e.LastStatus = rc.LastReply.Class, rc.LastReply.Code
	}
	return e
}
