package submission

import (
	"log/slog"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mtad/mtad/limits"
)

// Limits are the admission limits of a Server (issue 5, part 4). The zero
// Limits limits nothing. Clients in Exempt, and clients whose address is
// not known (not TCP), are never limited.
//
// A message rate of N per Per lets a client open N transactions at once
// and then one every Per/N: "3/1m" is three MAILs in a row, then one every
// 20 s. Over any window of Per that is at most 2N (a full bucket of N and
// the N earned meanwhile), and N per Per in the long run.
type Limits struct {
	// ConnectionsPerIP bounds the connections open at once from one
	// client address; one more is answered 421 4.7.0 before the greeting
	// and closed. It is checked before MaxConnections, so connections
	// refused for their address never count against that. 0: no limit.
	ConnectionsPerIP int
	// MessagesPerIP, MessagesPerSender and MessagesPerUser bound the
	// transactions opened (accepted MAIL commands) per period from one
	// client address, per envelope sender (lower-cased, the null sender as
	// "<>") and per authenticated user (only for sessions that
	// authenticated). Over one of them MAIL is answered 451 4.7.1 and the
	// client may try again later, in the same session. The zero Rate: no
	// limit.
	MessagesPerIP     limits.Rate
	MessagesPerSender limits.Rate
	MessagesPerUser   limits.Rate
	// Exempt clients are never limited by the above (MaxConnections still
	// applies). Default none.
	Exempt []netip.Prefix
	// Store holds the counts, and may be shared with other Servers or
	// nodes. Nil: a Store of the Server's own, limits.NewMemory.
	Store limits.Store
}

// Names of the admission limits in the Store (limits.Key).
const (
	connLimit    = "submission.connections"
	messageLimit = "submission.messages"
)

var errTooManyFromIP = replyErr(421, 4, 7, 0, "Too many connections from your address, try again later")

// rateLimited is the reply to a MAIL over a message rate, that may be
// taken again in d.
func rateLimited(d time.Duration) *smtp.SMTPError {
	secs := max(1, int64(math.Ceil(d.Seconds())))
	unit := " seconds"
	if secs == 1 {
		unit = " second"
	}
	return replyErr(451, 4, 7, 1, "Rate limit exceeded, try again in "+strconv.FormatInt(secs, 10)+unit)
}

func (s *Server) exempt(ip netip.Addr) bool {
	if !ip.IsValid() {
		return true
	}
	for _, p := range s.limits().Exempt {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// acquireSlot takes the connection slot of c's address, which c then
// holds until Close; false when the address has ConnectionsPerIP open.
// Runs in listener.Accept, before c is shared.
func (s *Server) acquireSlot(c *trackedConn, ip netip.Addr) bool {
	n := s.limits().ConnectionsPerIP
	if n <= 0 || s.exempt(ip) {
		return true
	}
	key := limits.Key(connLimit, "remote_ip="+ip.String())
	if !s.cfg.Limits.Store.Acquire(key, n, time.Now()) {
		return false
	}
	c.slot = key
	return true
}

// messageRate is one message rate as it applies to a transaction.
type messageRate struct {
	field string // key field of the limit, in logs too
	value string // "" when the limit does not apply
	rate  limits.Rate
}

// takeMessage counts a new transaction against the message rates, and
// refuses it with 451 4.7.1 when one of them is spent. Identities go
// before the address: a refused Take takes nothing, but the earlier Takes
// of a MAIL refused by a later one stay taken (the Store cannot give them
// back), and in this order one sender over its rate on a shared host never
// uses up the host's budget for the others. Runs on the connection's
// goroutine (session.Mail).
func (s *session) takeMessage(from string) error {
	if s.exempt {
		return nil
	}
	lim := s.srv.limits()
	err := s.srv.take(s.log, from, messageRate{"user", s.authenticated, lim.MessagesPerUser},
		messageRate{"sender", senderValue(from), lim.MessagesPerSender},
		messageRate{"remote_ip", ipString(s.ip), lim.MessagesPerIP})
	return err
}

// TakeSenderMessage counts a message from another way in (HTTP injection)
// against the sender's message rate: nil, or 451 4.7.1 when it is spent.
func (s *Server) TakeSenderMessage(from string) error {
	return s.take(s.log, from, messageRate{"sender", senderValue(from), s.limits().MessagesPerSender})
}

// take takes one message from each rate in turn (see takeMessage).
func (s *Server) take(log *slog.Logger, from string, rates ...messageRate) error {
	now := time.Now()
	for _, r := range rates {
		if r.value == "" || r.rate.IsZero() {
			continue
		}
		key := limits.Key(messageLimit, r.field+"="+r.value)
		if ok, at := s.limits().Store.Take(key, burstRate(r.rate), now); !ok {
			wait := at.Sub(now)
			log.Info("mail refused: rate limit", "limit", r.field, "rate", r.rate.String(), "from", from, "retry_in", wait)
			return rateLimited(wait)
		}
	}
	return nil
}

// senderValue is the key value of an envelope sender: lower-cased, "<>"
// for the null sender.
func senderValue(from string) string {
	if from == "" {
		return "<>"
	}
	return strings.ToLower(from)
}

// burstRate is r as the Store should count it so that a full bucket holds
// N events. A Store's rate of N per Per starts with a bucket of N/10 (see
// package limits); N×10 per Per×10 has the same pace, one event every
// Per/N, and a bucket of N. A rate too large to scale is taken as it is.
func burstRate(r limits.Rate) limits.Rate {
	if r.N > math.MaxInt/10 || r.Per > math.MaxInt64/10 {
		return r
	}
	return limits.Rate{N: r.N * 10, Per: r.Per * 10}
}
