package actors

import (
	"context"
	"strings"

	"github.com/mtad/mtad/maildir"
	"github.com/mtad/mtad/messages"
	"github.com/mtad/mtad/outbound"
)

// session is one delivery channel as a connection actor drives it: an
// outbound SMTP/LMTP session, or the local Maildir store.
type session interface {
	Deliver(ctx context.Context, tx outbound.Tx) ([]messages.Reply, error)
	Alive() bool
	Close() error
	Target() outbound.Target
	Offers(keyword string) bool // the server offered the EHLO keyword
	Local() bool                // delivered into a mailbox here: final delivery for DSNs
}

// netSession is an outbound SMTP/LMTP session.
type netSession struct{ *outbound.Conn }

func (netSession) Local() bool { return false }

// maildirSession delivers into the local route's Maildir tree.
type maildirSession struct {
	store *maildir.Store
	deps  *Deps
}

func newMaildirSession(d *Deps, root string) *maildirSession {
	return &maildirSession{store: &maildir.Store{Root: root, Hostname: d.Cfg().Server.Hostname}, deps: d}
}

// Deliver writes the message into each recipient's mailbox, streaming the
// body from tx.Body, which must hold exactly tx.Size bytes.
func (s *maildirSession) Deliver(ctx context.Context, tx outbound.Tx) ([]messages.Reply, error) {
	rcpts := make([]maildir.Rcpt, len(tx.Rcpts))
	for i, r := range tx.Rcpts {
		rcpts[i] = maildir.Rcpt{Addr: r.Addr}
	}
	body := tx.Body
	if body == nil {
		body = strings.NewReader("")
	}
	replies, err := s.store.Deliver(ctx, tx.From, rcpts, body, tx.Size)
	if err != nil {
		s.deps.Logger.Error("maildir delivery failed", "err", err)
	}
	return replies, nil
}

func (s *maildirSession) Alive() bool             { return true }
func (s *maildirSession) Close() error            { return nil }
func (s *maildirSession) Target() outbound.Target { return outbound.Target{Host: "maildir"} }
func (s *maildirSession) Offers(string) bool      { return false }
func (s *maildirSession) Local() bool             { return true }

func ipOf(t outbound.Target) string {
	if !t.Addr.IsValid() {
		return ""
	}
	return t.Addr.Addr().String()
}
