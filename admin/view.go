package admin

import (
	"time"

	"github.com/mtad/mtad/messages"
)

// The wire types, shared with the command line client.

// ListResponse answers GET /api/v1/messages. NextCursor, when set, is the
// cursor parameter that fetches the next page.
type ListResponse struct {
	Messages   []Message `json:"messages"`
	NextCursor string    `json:"next_cursor,omitempty"`
}

// Message is one message. In a list, Recipients holds only the recipients
// that matched the filters (all of them with no recipient filter) and
// RcptCount counts them all; in a show, it holds every recipient and the
// submission's parameters are filled in.
type Message struct {
	ID         string      `json:"id"`
	From       string      `json:"from"`
	Arrival    time.Time   `json:"arrival"`
	Size       int64       `json:"size"`
	Source     string      `json:"source,omitempty"`
	RcptCount  int         `json:"rcpt_count"`
	Pending    int         `json:"pending"`
	Recipients []Recipient `json:"recipients"`

	Body           string `json:"body,omitempty"`
	SMTPUTF8       bool   `json:"smtputf8,omitempty"`
	RequireTLS     bool   `json:"requiretls,omitempty"`
	Ret            string `json:"ret,omitempty"`
	EnvID          string `json:"envid,omitempty"`
	ReceivedFromIP string `json:"received_from_ip,omitempty"`
	Helo           string `json:"helo,omitempty"`
	Priority       int    `json:"priority,omitempty"`
}

// Recipient is one recipient's delivery state. NextAttempt is set for
// pending recipients only.
type Recipient struct {
	Index       uint32         `json:"index"`
	Addr        string         `json:"addr"`
	Status      string         `json:"status"`
	Queue       string         `json:"queue,omitempty"`
	Attempts    int            `json:"attempts"`
	NextAttempt time.Time      `json:"next_attempt,omitzero"`
	LastReply   messages.Reply `json:"last_reply,omitzero"`

	Notify        string `json:"notify,omitempty"`
	ORcpt         string `json:"orcpt,omitempty"`
	DelayedNotice int    `json:"delayed_notices,omitempty"`
}

func listView(env *messages.Envelope, rcpts []messages.Recipient) Message {
	m := Message{
		ID:         env.ID.String(),
		From:       env.From,
		Arrival:    env.Arrival,
		Size:       env.Size,
		Source:     env.Source,
		RcptCount:  len(env.Rcpts),
		Pending:    env.Pending(),
		Recipients: make([]Recipient, 0, len(rcpts)),
	}
	for i := range rcpts {
		m.Recipients = append(m.Recipients, rcptView(&rcpts[i]))
	}
	return m
}

func fullView(env *messages.Envelope) Message {
	m := listView(env, env.Rcpts)
	m.Body = string(env.Body)
	m.SMTPUTF8 = env.SMTPUTF8
	m.RequireTLS = env.RequireTLS
	m.Ret = string(env.Ret)
	m.EnvID = env.EnvID
	m.ReceivedFromIP = env.ReceivedFromIP
	m.Helo = env.Helo
	m.Priority = env.Priority
	for i, r := range env.Rcpts {
		m.Recipients[i].Notify = r.Notify.String()
		m.Recipients[i].ORcpt = r.ORcpt
		m.Recipients[i].DelayedNotice = r.NotifyNum
	}
	return m
}

func rcptView(r *messages.Recipient) Recipient {
	v := Recipient{
		Index:     r.Index,
		Addr:      r.Addr,
		Status:    r.Status.String(),
		Queue:     r.Queue,
		Attempts:  r.Attempts,
		LastReply: r.LastReply,
	}
	if r.Status == messages.StatusPending {
		v.NextAttempt = r.NextAttempt
	}
	return v
}
