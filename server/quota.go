package server

import (
	"sort"

	"github.com/mtad/mtad/config"
	"github.com/mtad/mtad/expression"
	"github.com/mtad/mtad/messages"
	"github.com/mtad/mtad/quota"
)

// newQuotaBook builds the admission quotas; nil when none are configured.
func newQuotaBook(cfg *config.Config) (*quota.Book, error) {
	qs, err := quotaList(cfg)
	if err != nil || len(qs) == 0 {
		return nil, err
	}
	return quota.NewBook(qs)
}

// quotaList is cfg's quotas in name order.
func quotaList(cfg *config.Config) ([]quota.Quota, error) {
	names := make([]string, 0, len(cfg.Queue.Quota))
	for n := range cfg.Queue.Quota {
		names = append(names, n)
	}
	sort.Strings(names)
	var qs []quota.Quota
	for _, n := range names {
		q := cfg.Queue.Quota[n]
		qs = append(qs, quota.Quota{Name: n, Key: quota.Key(q.Key), Messages: q.Messages, Bytes: q.Bytes, Match: quotaMatch(q.Match)})
	}
	return qs, nil
}

// quotaMatch adapts a match expression; a run-time error counts as a match
// (the quota applies), so a broken expression cannot open the floodgates.
func quotaMatch(p *expression.Predicate) func(*messages.Envelope, *messages.Recipient) bool {
	if p == nil {
		return nil
	}
	return func(env *messages.Envelope, rc *messages.Recipient) bool {
		e := expression.For(env, rc)
		ok, err := p.Eval(&e)
		return ok || err != nil
	}
}
