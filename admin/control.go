package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/mtad/mtad/internal/httpjson"
	"github.com/mtad/mtad/messages"
	"github.com/mtad/mtad/persistence"
)

// Control is the engine as the API's write operations steer it. The
// handler calls it from its request goroutines, possibly concurrently.
type Control interface {
	// Retry makes every pending recipient of these messages due now.
	Retry(ids []messages.MsgID)
	// Cancel fails the pending recipients of these messages (all of them
	// when rcpt is "", else only that address) as cancelled by the
	// operator; a DSN follows as each recipient's NOTIFY asks.
	Cancel(ids []messages.MsgID, rcpt string)
	// SuspendQueue suspends or resumes a virtual queue. Its only error is
	// an unknown queue, and its text is shown to the operator.
	SuspendQueue(name string, suspended bool) error
	// SuspendDomain suspends or resumes delivery to a recipient domain
	// (sender false) or of mail from a sender domain (sender true). Its
	// only error is a malformed domain.
	SuspendDomain(domain string, sender, suspended bool) error
}

// DomainState answers POST /api/v1/domains/{domain}/suspend|resume and
// /api/v1/senders/{domain}/suspend|resume.
type DomainState struct {
	Domain    string `json:"domain"`
	Kind      string `json:"kind"` // "recipient" or "sender"
	Suspended bool   `json:"suspended"`
}

// MaxSelect bounds the messages one retry or cancel acts on; a larger
// selection is refused whole rather than done in part.
const MaxSelect = 100_000

// maxSelectBody bounds a retry or cancel body: MaxSelect ids and change.
const maxSelectBody = 4 << 20

// Selected answers POST /api/v1/messages/retry and /cancel. Matched counts
// the messages handed to the engine. Skipped counts, for a cancel by
// filter, the messages left alone because the filter matches only some of
// the pending recipients the cancel would fail: cancel those by id.
type Selected struct {
	Matched int `json:"matched"`
	Skipped int `json:"skipped,omitempty"`
}

// QueueState answers POST /api/v1/queues/{name}/suspend and /resume.
type QueueState struct {
	Queue     string `json:"queue"`
	Suspended bool   `json:"suspended"`
}

// SelectRequest is the body of a retry or cancel. Without ids, the query
// parameters select, as they filter the list. Rcpt is for cancel only.
type SelectRequest struct {
	IDs  []string `json:"ids,omitempty"`
	Rcpt string   `json:"rcpt,omitempty"`
}

// verdict is what a write operation makes of one message.
type verdict int

const (
	skip    verdict = iota // not selected
	take                   // selected
	partial                // matched in part, left alone
)

// retry answers POST /api/v1/messages/retry.
func (h *handler) retry(w http.ResponseWriter, r *http.Request) {
	req, f, ok := h.readSelection(w, r)
	if !ok {
		return
	}
	if req.Rcpt != "" {
		writeError(w, http.StatusBadRequest, "rcpt: a retry makes every pending recipient of a message due; it takes no rcpt")
		return
	}
	ids, sel, ok := h.collect(w, req.IDs, f, retryVerdict)
	if !ok {
		return
	}
	if len(ids) > 0 {
		h.ctl.Retry(ids)
	}
	httpjson.Write(w, http.StatusOK, sel)
}

// retryVerdict takes a message when one of its pending recipients matches.
func retryVerdict(f *filter, env *messages.Envelope) verdict {
	if !f.matchSender(env) {
		return skip
	}
	for i := range env.Rcpts {
		if !env.Rcpts[i].Status.Final() && f.matchRcpt(&env.Rcpts[i]) {
			return take
		}
	}
	return skip
}

// cancel answers POST /api/v1/messages/cancel.
func (h *handler) cancel(w http.ResponseWriter, r *http.Request) {
	req, f, ok := h.readSelection(w, r)
	if !ok {
		return
	}
	if len(req.IDs) == 0 && !f.selects() {
		writeError(w, http.StatusBadRequest, "refusing to cancel everything: give ids or a filter")
		return
	}
	ids, sel, ok := h.collect(w, req.IDs, f, cancelVerdict(req.Rcpt))
	if !ok {
		return
	}
	if len(ids) > 0 {
		h.ctl.Cancel(ids, req.Rcpt)
	}
	httpjson.Write(w, http.StatusOK, sel)
}

// cancelVerdict takes a message when every pending recipient the cancel
// would fail (those at rcpt, or all with rcpt "") matches the filter: a
// filter on one domain must not fail the message's other recipients.
func cancelVerdict(rcpt string) func(*filter, *messages.Envelope) verdict {
	return func(f *filter, env *messages.Envelope) verdict {
		if !f.matchSender(env) {
			return skip
		}
		hit, miss := 0, 0
		for i := range env.Rcpts {
			r := &env.Rcpts[i]
			if r.Status.Final() || (rcpt != "" && !strings.EqualFold(r.Addr, rcpt)) {
				continue
			}
			if f.matchRcpt(r) {
				hit++
			} else {
				miss++
			}
		}
		switch {
		case hit == 0:
			return skip
		case miss > 0:
			return partial
		}
		return take
	}
}

// suspend answers POST /api/v1/queues/{name}/suspend and /resume.
func (h *handler) suspend(suspended bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !h.canWrite(w) {
			return
		}
		name := r.PathValue("name")
		if err := h.ctl.SuspendQueue(name, suspended); err != nil {
			writeError(w, http.StatusNotFound, err.Error())
			return
		}
		httpjson.Write(w, http.StatusOK, QueueState{Queue: name, Suspended: suspended})
	}
}

// suspendDomain answers the domain and sender-domain suspensions.
func (h *handler) suspendDomain(sender, suspended bool) http.HandlerFunc {
	kind := "recipient"
	if sender {
		kind = "sender"
	}
	return func(w http.ResponseWriter, r *http.Request) {
		if !h.canWrite(w) {
			return
		}
		d := strings.ToLower(r.PathValue("domain"))
		if err := h.ctl.SuspendDomain(d, sender, suspended); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		httpjson.Write(w, http.StatusOK, DomainState{Domain: d, Kind: kind, Suspended: suspended})
	}
}

func (h *handler) canWrite(w http.ResponseWriter) bool {
	if h.ctl == nil {
		writeError(w, http.StatusNotImplemented, "this server does not offer write operations")
		return false
	}
	return true
}

// readSelection reads a retry or cancel: its body and its filter. It has
// answered the request when ok is false.
func (h *handler) readSelection(w http.ResponseWriter, r *http.Request) (req SelectRequest, f *filter, ok bool) {
	if !h.canWrite(w) {
		return req, nil, false
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxSelectBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil && !errors.Is(err, io.EOF) {
		writeError(w, http.StatusBadRequest, "body: "+err.Error())
		return req, nil, false
	}
	f, err := parseSelection(r.URL.Query())
	if err == nil && len(req.IDs) > 0 && f.selects() {
		err = errors.New("ids: give ids or a filter, not both")
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return req, nil, false
	}
	return req, f, true
}

// parseSelection reads the list's filters, without its paging.
func parseSelection(q url.Values) (*filter, error) {
	for _, p := range []string{"limit", "cursor"} {
		if q.Has(p) {
			return nil, fmt.Errorf("%s: a retry or cancel acts on every matching message; it does not page", p)
		}
	}
	return parseFilter(q)
}

// collect selects the messages by ids, or by f when there are none, as
// judge says. It has answered the request when ok is false.
func (h *handler) collect(w http.ResponseWriter, raw []string, f *filter, judge func(*filter, *messages.Envelope) verdict) (ids []messages.MsgID, sel Selected, ok bool) {
	add := func(env *messages.Envelope) error {
		switch judge(f, env) {
		case take:
			if len(ids) == MaxSelect {
				return errTooMany
			}
			ids = append(ids, env.ID)
		case partial:
			sel.Skipped++
		}
		return nil
	}
	var err error
	if len(raw) > 0 {
		err = h.byIDs(raw, add)
	} else {
		err = h.src.Load(add)
	}
	var bad badIDError
	switch {
	case errors.As(err, &bad), errors.Is(err, errTooMany):
		writeError(w, http.StatusBadRequest, err.Error())
		return nil, sel, false
	case err != nil:
		writeError(w, http.StatusInternalServerError, "reading the journal: "+err.Error())
		return nil, sel, false
	}
	sel.Matched = len(ids)
	return ids, sel, true
}

var errTooMany = fmt.Errorf("the selection has more than %d messages: narrow the filter", MaxSelect)

// badIDError is an id in a request body that is none.
type badIDError struct{ err error }

func (e badIDError) Error() string { return "ids: " + e.err.Error() }

// byIDs calls fn with each message of raw in the journal, once each, in
// the order given; it parses them all first.
func (h *handler) byIDs(raw []string, fn func(*messages.Envelope) error) error {
	if len(raw) > MaxSelect {
		return errTooMany
	}
	seen := make(map[messages.MsgID]bool, len(raw))
	ids := make([]messages.MsgID, 0, len(raw))
	for _, s := range raw {
		id, err := parseID(s)
		if err != nil {
			return badIDError{err}
		}
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	for _, id := range ids {
		env, err := h.src.Get(id)
		if errors.Is(err, persistence.ErrNotFound) {
			continue // gone since the operator listed it
		}
		if err != nil {
			return err
		}
		if err := fn(env); err != nil {
			return err
		}
	}
	return nil
}
