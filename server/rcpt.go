package server

import (
	"fmt"
	"slices"

	"github.com/emersion/go-smtp"

	"github.com/mtad/mtad/config"
	"github.com/mtad/mtad/expression"
	"github.com/mtad/mtad/maildir"
	"github.com/mtad/mtad/messages"
)

// checkRcpt refuses, at RCPT time, a recipient of a local domain whose
// route is Maildir delivery and whose mailbox does not exist: 550 5.1.1
// now rather than a bounce later (which would be backscatter for mail
// from outside). Other recipients are accepted here and decided at
// delivery.
func (s *Server) checkRcpt(rcpt string) error {
	cfg := s.config()
	domain := messages.Domain(rcpt)
	if !slices.Contains(cfg.Session.LocalDomains, domain) {
		return nil
	}
	env := expression.Env{Rcpt: rcpt, RcptDomain: domain}
	name, err := cfg.Queue.Strategy.Route.Eval(&env)
	route, ok := cfg.Queue.Route[name]
	if err != nil || !ok || route.Type != config.RouteLocal || route.LMTP != "" {
		return nil
	}
	store := maildir.Store{Root: cfg.MaildirPath(route), Hostname: cfg.Server.Hostname}
	r := store.Lookup(rcpt)
	if r == nil {
		return nil
	}
	return &smtp.SMTPError{Code: r.Code, EnhancedCode: enhanced(r.Enhanced), Message: r.Text}
}

func enhanced(s string) smtp.EnhancedCode {
	var n [3]int
	if k, _ := fmt.Sscanf(s, "%d.%d.%d", &n[0], &n[1], &n[2]); k != 3 {
		return smtp.NoEnhancedCode
	}
	return smtp.EnhancedCode{n[0], n[1], n[2]}
}
