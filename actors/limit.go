package actors

import (
	"strings"
	"time"

	"github.com/mtad/mtad/config"
	"github.com/mtad/mtad/expression"
	"github.com/mtad/mtad/limits"
	"github.com/mtad/mtad/messages"
)

// Outbound limits (config.Limit) are enforced by destination actors for
// remote deliveries of ordinary mail; local deliveries and DSNs are never
// held. A limit applies when its match holds; its key is built from the
// values of its key fields, so destinations with the same values share one
// budget in the limits.Store (per sender, per local_ip, per site...).
//
//   - connection-rate and concurrency are taken when a destination opens
//     a connection (with the values of the first hop it will try);
//     concurrency slots are released when the connection ends;
//   - rate is taken per message, when a job is handed to a connection
//     (with that connection's MX host and address);
//   - messages-per-connection caps how many jobs a connection carries.
//
// A refusal holds the job in the destination's ready list: it is not an
// attempt, its recipients' last_error becomes "rate" or "concurrency", and
// a timer wakes the destination when the limit allows (rates: at the time
// the store gives; concurrency: after concurrencyPoll, as a slot freed by
// another destination sends no notice).

// concurrencyPoll is how soon a destination held by a concurrency limit
// looks again.
const concurrencyPoll = 200 * time.Millisecond

// limitValues are the values limit keys and matches are built from.
type limitValues struct {
	rcptDomain, sender, mx, remoteIP, localIP, queue, site, source string
}

func (v limitValues) field(f string) string {
	switch f {
	case "rcpt_domain":
		return v.rcptDomain
	case "sender":
		return strings.ToLower(v.sender)
	case "sender_domain":
		return messages.Domain(v.sender)
	case "mx":
		return v.mx
	case "remote_ip":
		return v.remoteIP
	case "local_ip":
		return v.localIP
	case "queue_name":
		return v.queue
	case "site":
		return v.site
	}
	return ""
}

// applied is one limit that applies, with its key.
type applied struct {
	limit *config.Limit
	key   string
}

// applicable returns the limits that apply to v, with their keys.
func applicable(cfg *config.Config, v limitValues) []applied {
	var out []applied
	for i := range cfg.Queue.Limit {
		l := &cfg.Queue.Limit[i]
		if v.site == "" && keyedBy(l, "site") {
			continue // a destination outside every site is not in a site's budget
		}
		if l.Match != nil {
			env := expression.Env{RcptDomain: v.rcptDomain, Sender: v.sender, SenderDomain: messages.Domain(v.sender),
				MX: v.mx, RemoteIP: v.remoteIP, LocalIP: v.localIP, QueueName: v.queue, Source: v.source}
			if ok, err := l.Match.Eval(&env); err == nil && !ok {
				continue
			}
		}
		parts := make([]string, len(l.Key))
		for j, f := range l.Key {
			parts[j] = f + "=" + v.field(f)
		}
		out = append(out, applied{limit: l, key: limits.Key(l.Name, parts...)})
	}
	return out
}

// openConn takes what opening one connection needs: connection rates and
// concurrency slots. ok false: not now; retryAt says when to look again,
// reason is "rate" or "concurrency". held are the slots to release when
// the connection ends; maxMsgs the messages-per-connection cap (0: none).
//
// Concurrency slots are taken first, rates last: a refusal for want of a
// slot (polled) must not spend connection-rate tokens. With several rate
// limits, one refused after another was taken loses that token (the store
// cannot give tokens back).
func openConn(store limits.Store, ls []applied, now time.Time) (ok bool, retryAt time.Time, reason string, held []string, maxMsgs int) {
	for _, a := range ls {
		if c := a.limit.Concurrency; c > 0 {
			if !store.Acquire(a.key+"|conc", c, now) {
				releaseAll(store, held)
				return false, now.Add(concurrencyPoll), "concurrency", nil, 0
			}
			held = append(held, a.key+"|conc")
		}
		if m := a.limit.MessagesPerConn; m > 0 && (maxMsgs == 0 || m < maxMsgs) {
			maxMsgs = m
		}
	}
	for _, a := range ls {
		if r := a.limit.ConnectionRate; !r.IsZero() {
			if ok, at := store.Take(a.key+"|conn", r, now); !ok {
				releaseAll(store, held)
				return false, at, "rate", nil, 0
			}
		}
	}
	return true, time.Time{}, "", held, maxMsgs
}

func releaseAll(store limits.Store, keys []string) {
	for _, k := range keys {
		store.Release(k)
	}
}

// sendMessage takes one message from each applicable message rate.
func sendMessage(store limits.Store, ls []applied, now time.Time) (ok bool, retryAt time.Time) {
	for _, a := range ls {
		if r := a.limit.Rate; !r.IsZero() {
			if ok, at := store.Take(a.key+"|msg", r, now); !ok {
				return false, at
			}
		}
	}
	return true, time.Time{}
}

// siteOf names the site whose MX suffixes match one of the hosts.
func siteOf(cfg *config.Config, hosts []string) string {
	for name, s := range cfg.Queue.Site {
		for _, h := range hosts {
			for _, suf := range s.MXSuffix {
				if strings.HasSuffix(strings.ToLower(h), suf) {
					return name
				}
			}
		}
	}
	return ""
}

func keyedBy(l *config.Limit, field string) bool {
	for _, f := range l.Key {
		if f == field {
			return true
		}
	}
	return false
}
