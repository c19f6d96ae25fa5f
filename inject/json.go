package inject

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/mtad/mtad/messages"
	"github.com/mtad/mtad/submission"
)

// jsonRequest is the application/json form: an envelope and either a raw
// message or one to compose.
type jsonRequest struct {
	Envelope *jsonEnvelope `json:"envelope"`
	Raw      *string       `json:"raw"`
	Message  *jsonMessage  `json:"message"`
}

type jsonEnvelope struct {
	From       *string           `json:"from"`
	To         []json.RawMessage `json:"to"` // each an address or a jsonRcpt
	Notify     string            `json:"notify"`
	Ret        string            `json:"ret"`
	EnvID      string            `json:"envid"`
	Priority   int               `json:"priority"`
	Metadata   map[string]string `json:"metadata"`
	RequireTLS bool              `json:"requiretls"` // refused: see errRequireTLS
}

type jsonRcpt struct {
	Addr   string `json:"addr"`
	Notify string `json:"notify"`
	ORcpt  string `json:"orcpt"`
}

// jsonSlack is what a JSON request may hold beyond twice MaxMessageSize:
// the envelope and the message's fields.
const jsonSlack = 1 << 20

// serveJSON admits an application/json request.
func (h *Handler) serveJSON(w http.ResponseWriter, r *http.Request) {
	if name := hasEnvelopeHeaders(r.Header); name != "" {
		h.fail(w, badRequest("%s: envelope headers go with message/rfc822; in JSON, use \"envelope\"", name))
		return
	}
	req, err := decodeRequest(w, r, 2*h.cfg.MaxMessageSize+jsonSlack)
	if err != nil {
		h.fail(w, err)
		return
	}
	env, msg, err := parseRequest(req)
	if err == nil {
		err = h.admit(env)
	}
	if err != nil {
		h.fail(w, err)
		return
	}
	hdr := h.start(env, remoteIP(r))
	var body []byte
	if msg != nil {
		body = msg.compose(hdr, h.cfg.Hostname, env.Arrival)
	} else {
		body = make([]byte, 0, len(hdr)+len(*req.Raw)+len("\r\n"))
		body = append(append(body, hdr...), *req.Raw...)
		req.Raw = nil
	}
	h.finish(w, r, env, endCRLF(submission.NormalizeEOL(body)))
}

// decodeRequest reads the JSON object of r, at most max bytes, and
// nothing after it.
func decodeRequest(w http.ResponseWriter, r *http.Request, max int64) (*jsonRequest, error) {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, max))
	dec.DisallowUnknownFields()
	var req jsonRequest
	err := dec.Decode(&req)
	if err == nil && dec.Decode(&struct{}{}) != io.EOF {
		err = errors.New("data after the JSON object")
	}
	if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
		return nil, errTooBig
	}
	if err != nil {
		return nil, badRequest("%s", jsonError(err))
	}
	return &req, nil
}

// jsonError words a decoding error, naming the field when it can.
func jsonError(err error) string {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te) && te.Field != "":
		return fmt.Sprintf("%s: want %s, got %s", te.Field, te.Type, te.Value)
	case errors.As(err, &te):
		return fmt.Sprintf("want %s, got %s", te.Type, te.Value)
	case errors.As(err, &se):
		return fmt.Sprintf("invalid JSON at byte %d: %s", se.Offset, strings.TrimPrefix(se.Error(), "json: "))
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "incomplete JSON"
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

// parseRequest checks a request and returns its envelope and, for the
// message form, the message to compose.
func parseRequest(req *jsonRequest) (*messages.Envelope, *message, error) {
	var msg *message
	switch {
	case req.Raw != nil && req.Message != nil:
		return nil, nil, badRequest("raw and message: give one of them")
	case req.Raw != nil && *req.Raw == "":
		return nil, nil, refuse(http.StatusBadRequest, 554, "5.6.0", "raw: empty message")
	case req.Raw == nil && req.Message == nil:
		return nil, nil, badRequest("raw or message is required")
	case req.Message != nil:
		var err error
		if msg, err = parseMessage(req.Message); err != nil {
			return nil, nil, err
		}
		req.Message = nil // attachments are decoded: the base64 can go
	}
	env, err := parseEnvelope(req.Envelope, msg)
	return env, msg, err
}

// parseEnvelope checks the JSON envelope; with a message, its from and to
// default to the message's From and its To, Cc and Bcc.
func parseEnvelope(e *jsonEnvelope, msg *message) (*messages.Envelope, error) {
	if e == nil && msg == nil {
		return nil, badRequest("envelope is required with raw")
	}
	if e == nil {
		e = &jsonEnvelope{}
	}
	if e.RequireTLS {
		return nil, errRequireTLS
	}
	env := &messages.Envelope{Priority: e.Priority}
	if len(e.Metadata) > 0 {
		env.Metadata = e.Metadata
	}
	var err error
	switch {
	case e.From != nil:
		env.From, err = parseSender("envelope.from", *e.From)
	case msg != nil:
		env.From = msg.sender
	default:
		err = badRequest("envelope.from is required with raw (\"\" for the null reverse-path <>)")
	}
	if err != nil {
		return nil, err
	}
	if env.Ret, err = parseRet("envelope.ret", e.Ret); err != nil {
		return nil, err
	}
	if env.EnvID, err = parseEnvID("envelope.envid", e.EnvID); err != nil {
		return nil, err
	}
	env.Rcpts, err = envelopeRcpts(e, msg)
	return env, err
}

// envelopeRcpts reads envelope.to, or takes the message's recipients
// when it is absent.
func envelopeRcpts(e *jsonEnvelope, msg *message) ([]messages.Recipient, error) {
	n, err := parseNotify("envelope.notify", e.Notify)
	if err != nil {
		return nil, err
	}
	var rl rcptList
	if e.To == nil && msg != nil {
		for _, a := range msg.rcpts {
			if err := rl.add(a.field, a.addr, n, ""); err != nil {
				return nil, err
			}
		}
		return rl.rcpts, nil
	}
	for i, raw := range e.To {
		field := fmt.Sprintf("envelope.to[%d]", i)
		if err := addJSONRcpt(&rl, field, raw, n); err != nil {
			return nil, err
		}
	}
	return rl.rcpts, nil
}

// addJSONRcpt adds one element of envelope.to: an address, or an object
// with addr, notify and orcpt.
func addJSONRcpt(rl *rcptList, field string, raw json.RawMessage, n messages.Notify) error {
	var addr string
	if err := json.Unmarshal(raw, &addr); err == nil {
		return rl.add(field, addr, n, "")
	}
	var rc jsonRcpt
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rc); err != nil {
		return badRequest("%s: want an address or {\"addr\", \"notify\", \"orcpt\"}: %s", field, jsonError(err))
	}
	if rc.Addr == "" {
		return badRequest("%s.addr: required", field)
	}
	if rc.Notify != "" {
		var err error
		if n, err = parseNotify(field+".notify", rc.Notify); err != nil {
			return err
		}
	}
	orcpt, err := parseORcpt(field+".orcpt", rc.ORcpt)
	if err != nil {
		return err
	}
	return rl.add(field+".addr", rc.Addr, n, orcpt)
}
