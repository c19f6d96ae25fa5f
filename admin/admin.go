// Package admin is mtad's management API: JSON over HTTP that lists the
// queued messages with filters and pagination, shows one message with
// every recipient's state, and summarises the queue; and, through a
// Control, retries and cancels messages and suspends and resumes queues.
//
// It reads the journal and nothing else, so what it reports is what
// survives a restart; it changes nothing itself but asks the Control. It
// does no authentication: the caller mounts it
// behind the management listener's bearer token. Every error is answered
// as {"error": "..."} with a status code; a bad query parameter is a 400
// whose text names the parameter.
package admin

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/mtad/mtad/internal/httpjson"
	"github.com/mtad/mtad/messages"
	"github.com/mtad/mtad/persistence"
)

// Source is the journal as the API reads it. Load calls fn with every
// message in id order and stops at, and returns, the first error fn
// returns. Get returns an error wrapping persistence.ErrNotFound when the
// message is not there.
type Source interface {
	Load(fn func(env *messages.Envelope) error) error
	Get(id messages.MsgID) (*messages.Envelope, error)
}

var _ Source = (*persistence.Journal)(nil)

// errStop ends a Load early; it is not an error.
var errStop = errors.New("admin: stop")

type handler struct {
	src Source
	ctl Control // nil: the write endpoints answer 501
	now func() time.Time
}

// Handler serves the API under /api/v1/. With a nil ctl the write
// endpoints answer 501.
func Handler(src Source, ctl Control) http.Handler {
	return newHandler(src, ctl, time.Now)
}

// newHandler registers every endpoint without a method, and allow answers
// 405 for the wrong one: with methods in the patterns, GET
// /api/v1/messages/{id} would take GET /api/v1/messages/retry.
func newHandler(src Source, ctl Control, now func() time.Time) http.Handler {
	h := &handler{src: src, ctl: ctl, now: now}
	mux := http.NewServeMux()
	mux.HandleFunc("/api/v1/messages", allow(http.MethodGet, h.list))
	mux.HandleFunc("/api/v1/messages/{id}", allow(http.MethodGet, h.show))
	mux.HandleFunc("/api/v1/summary", allow(http.MethodGet, h.summary))
	mux.HandleFunc("/api/v1/messages/retry", allow(http.MethodPost, h.retry))
	mux.HandleFunc("/api/v1/messages/cancel", allow(http.MethodPost, h.cancel))
	mux.HandleFunc("/api/v1/queues/{name}/suspend", allow(http.MethodPost, h.suspend(true)))
	mux.HandleFunc("/api/v1/queues/{name}/resume", allow(http.MethodPost, h.suspend(false)))
	mux.HandleFunc("/api/v1/domains/{domain}/suspend", allow(http.MethodPost, h.suspendDomain(false, true)))
	mux.HandleFunc("/api/v1/domains/{domain}/resume", allow(http.MethodPost, h.suspendDomain(false, false)))
	mux.HandleFunc("/api/v1/senders/{domain}/suspend", allow(http.MethodPost, h.suspendDomain(true, true)))
	mux.HandleFunc("/api/v1/senders/{domain}/resume", allow(http.MethodPost, h.suspendDomain(true, false)))
	mux.HandleFunc("/api/v1/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no endpoint %s %s", r.Method, r.URL.Path))
	})
	return mux
}

// allow answers 405 to any method but method (and HEAD, for GET).
func allow(method string, next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != method && (method != http.MethodGet || r.Method != http.MethodHead) {
			w.Header().Set("Allow", method)
			writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("%s %s: use %s", r.Method, r.URL.Path, method))
			return
		}
		next(w, r)
	}
}

// list answers GET /api/v1/messages.
func (h *handler) list(w http.ResponseWriter, r *http.Request) {
	f, err := parseFilter(r.URL.Query())
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	resp := ListResponse{Messages: []Message{}}
	err = h.src.Load(func(env *messages.Envelope) error {
		if env.ID <= f.cursor {
			return nil
		}
		rcpts := f.match(env)
		if rcpts == nil {
			return nil
		}
		if len(resp.Messages) == f.limit {
			resp.NextCursor = resp.Messages[f.limit-1].ID
			return errStop
		}
		resp.Messages = append(resp.Messages, listView(env, rcpts))
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		writeError(w, http.StatusInternalServerError, "reading the journal: "+err.Error())
		return
	}
	httpjson.Write(w, http.StatusOK, resp)
}

// show answers GET /api/v1/messages/{id}.
func (h *handler) show(w http.ResponseWriter, r *http.Request) {
	id, err := parseID(r.PathValue("id"))
	if err != nil {
		writeError(w, http.StatusBadRequest, "id: "+err.Error())
		return
	}
	env, err := h.src.Get(id)
	switch {
	case errors.Is(err, persistence.ErrNotFound):
		writeError(w, http.StatusNotFound, fmt.Sprintf("no message %v in the queue", id))
		return
	case err != nil:
		writeError(w, http.StatusInternalServerError, "reading the journal: "+err.Error())
		return
	}
	httpjson.Write(w, http.StatusOK, fullView(env))
}

// summary answers GET /api/v1/summary.
func (h *handler) summary(w http.ResponseWriter, r *http.Request) {
	if len(r.URL.Query()) > 0 {
		writeError(w, http.StatusBadRequest, "summary takes no parameters")
		return
	}
	var c counter
	if err := h.src.Load(func(env *messages.Envelope) error { c.add(env); return nil }); err != nil {
		writeError(w, http.StatusInternalServerError, "reading the journal: "+err.Error())
		return
	}
	s := c.summary(h.now())
	if sr, ok := h.ctl.(SiteResolver); ok {
		addSites(r.Context(), &s, sr)
	}
	httpjson.Write(w, http.StatusOK, s)
}

// parseID reads a message id as messages.MsgID.String writes it.
func parseID(s string) (messages.MsgID, error) {
	n, err := strconv.ParseUint(s, 16, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a message id (16 hex digits)", s)
	}
	return messages.MsgID(n), nil
}

// Error is the body of every answer that is not a 200.
type Error struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, code int, msg string) {
	httpjson.Write(w, code, Error{Error: msg})
}
