package inject

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/emersion/go-smtp"

	"github.com/mtad/mtad/internal/httpjson"
	"github.com/mtad/mtad/messages"
	"github.com/mtad/mtad/submission"
)

// Acceptor journals a message, with the contract of submission.Acceptor:
// Accept returns only when the message is durable, may be called
// concurrently, and an *smtp.SMTPError it returns (a full quota: 452
// 4.3.1) is the answer. env and body are handed over.
type Acceptor interface {
	NextID() messages.MsgID
	Accept(env *messages.Envelope, body []byte) error
}

// One acceptor serves SMTP submission and HTTP injection.
var _ Acceptor = submission.Acceptor(nil)

// Config is what the Handler needs. New copies it; zero values get the
// defaults noted.
type Config struct {
	Hostname string // Received header and Message-ID; default "localhost"
	// MaxMessageSize bounds the message as journaled, Received header
	// included; default 50 MiB. A JSON request may be up to twice that
	// plus 1 MiB (base64 and escapes).
	MaxMessageSize int64
	MaxRecipients  int // per request, after duplicates are merged; default 10000
	// CheckRcpt, if set, is asked about each recipient, as
	// submission.Config.CheckRcpt: an *smtp.SMTPError refuses that
	// recipient (550 5.1.1), nil accepts; another error refuses it 451
	// 4.3.0.
	CheckRcpt func(rcpt string) error
	// TakeMessage, if set, counts the request against the admission
	// rates of its envelope sender ("" for the null reverse-path); an
	// *smtp.SMTPError (451 4.7.1) refuses the whole request.
	TakeMessage func(sender string) error
	// MaxMetadata bounds the metadata pairs; default 32. Keys are 1 to 64
	// of [a-z0-9_-], values at most 1024 bytes of UTF-8 without control
	// characters.
	MaxMetadata int
	// RetryAfter is the Retry-After of a 429; default 1m.
	RetryAfter time.Duration
}

// Defaults for the zero values of Config.
const (
	DefaultMaxMessageSize = submission.DefaultMaxMessageSize
	DefaultMaxRecipients  = 10000
	DefaultMaxMetadata    = 32
	DefaultRetryAfter     = time.Minute
)

func (c Config) withDefaults() Config {
	if c.Hostname == "" {
		c.Hostname = submission.DefaultHostname
	}
	if c.MaxMessageSize <= 0 {
		c.MaxMessageSize = DefaultMaxMessageSize
	}
	if c.MaxRecipients <= 0 {
		c.MaxRecipients = DefaultMaxRecipients
	}
	if c.MaxMetadata <= 0 {
		c.MaxMetadata = DefaultMaxMetadata
	}
	if c.RetryAfter <= 0 {
		c.RetryAfter = DefaultRetryAfter
	}
	return c
}

// Handler admits messages posted to it; see the package doc. Create it
// with New.
type Handler struct {
	cfg Config
	acc Acceptor
	log *slog.Logger
}

var _ http.Handler = (*Handler)(nil)

// New builds a Handler. A nil log discards.
func New(cfg Config, acc Acceptor, log *slog.Logger) *Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Handler{cfg: cfg.withDefaults(), acc: acc, log: log}
}

// Response is the answer to an admitted request (202).
type Response struct {
	ID         string            `json:"id"`
	Accepted   int               `json:"accepted"`
	Rejected   int               `json:"rejected"`
	Recipients []RecipientResult `json:"recipients"`
}

// RecipientResult is the outcome for one recipient; Code, Enhanced and
// Message are the refusal of a rejected one.
type RecipientResult struct {
	Addr     string `json:"addr"`
	Status   string `json:"status"` // "accepted" or "rejected"
	Code     int    `json:"code,omitempty"`
	Enhanced string `json:"enhanced,omitempty"`
	Message  string `json:"message,omitempty"`
}

// ErrorResponse is the answer to every request that was not admitted.
// Code and Enhanced are the SMTP reply that fits, when one does;
// Recipients is set when every recipient was refused.
type ErrorResponse struct {
	Error      string            `json:"error"`
	Code       int               `json:"code,omitempty"`
	Enhanced   string            `json:"enhanced,omitempty"`
	Recipients []RecipientResult `json:"recipients,omitempty"`
}

// Recipient outcomes.
const (
	statusAccepted = "accepted"
	statusRejected = "rejected"
)

// refusal is an answer that admits nothing: an HTTP status and, when one
// fits, the SMTP reply.
type refusal struct {
	status   int
	code     int
	enhanced string
	text     string
	rcpts    []RecipientResult
}

func (r *refusal) Error() string { return r.text }

func refuse(status, code int, enhanced, format string, args ...any) *refusal {
	return &refusal{status: status, code: code, enhanced: enhanced, text: fmt.Sprintf(format, args...)}
}

// badRequest refuses a request that is malformed: 400, 501 5.5.4 (invalid
// arguments).
func badRequest(format string, args ...any) *refusal {
	return refuse(http.StatusBadRequest, 501, "5.5.4", format, args...)
}

var (
	errTooBig      = refuse(http.StatusRequestEntityTooLarge, 552, "5.3.4", "Message size exceeds fixed maximum message size")
	errTempFailure = refuse(http.StatusServiceUnavailable, 451, "4.3.0", "journal unavailable")
	errNoRcpts     = refuse(http.StatusBadRequest, 554, "5.5.1", "no recipients")
	errRcptTemp    = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Temporary failure, please try again later"}
)

// smtpRefusal answers an *smtp.SMTPError that refuses the whole request:
// 429 for a temporary one (the client should slow down or come back), 422
// for a permanent one.
func smtpRefusal(se *smtp.SMTPError) *refusal {
	status := http.StatusUnprocessableEntity
	if se.Code >= 400 && se.Code < 500 {
		status = http.StatusTooManyRequests
	}
	return &refusal{status: status, code: se.Code, enhanced: enhancedString(se.EnhancedCode), text: se.Message}
}

func enhancedString(ec smtp.EnhancedCode) string {
	if ec[0] <= 0 {
		return ""
	}
	return fmt.Sprintf("%d.%d.%d", ec[0], ec[1], ec[2])
}

// ServeHTTP admits one message; see the package doc.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		h.fail(w, refuse(http.StatusMethodNotAllowed, 0, "", "%s %s: use POST", r.Method, r.URL.Path))
		return
	}
	ct, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch {
	case err == nil && ct == "message/rfc822":
		h.serveRaw(w, r)
	case err == nil && ct == "application/json" && (params["charset"] == "" || strings.EqualFold(params["charset"], "utf-8")):
		h.serveJSON(w, r)
	default:
		h.fail(w, refuse(http.StatusUnsupportedMediaType, 0, "",
			"Content-Type %q: use message/rfc822 or application/json", r.Header.Get("Content-Type")))
	}
}

// serveRaw admits a message/rfc822 request: the envelope in headers, the
// body read once, into the buffer that is journaled.
func (h *Handler) serveRaw(w http.ResponseWriter, r *http.Request) {
	env, err := envelopeFromHeaders(r.Header)
	if err == nil {
		err = h.admit(env)
	}
	if err == nil && r.ContentLength > h.cfg.MaxMessageSize {
		err = errTooBig
	}
	if err != nil {
		h.fail(w, err)
		return
	}
	ip := remoteIP(r)
	hdr := h.start(env, ip)
	body, err := readMessage(hdr, r.Body, r.ContentLength, h.cfg.MaxMessageSize)
	if err != nil {
		h.fail(w, err)
		return
	}
	h.finish(w, r, env, endCRLF(submission.NormalizeEOL(body)))
}

// start gives env its id, arrival time, source and client address, and
// returns its Received header.
func (h *Handler) start(env *messages.Envelope, ip netip.Addr) string {
	env.ID = h.acc.NextID()
	env.Arrival = time.Now()
	env.Source = "http"
	if ip.IsValid() {
		env.ReceivedFromIP = ip.String()
	}
	return receivedHeader(env, ip, h.cfg.Hostname)
}

// receivedHeader is the trace header of RFC 5321 4.4 for an injection:
//
//	Received: from <address-literal>
//		by <hostname> with HTTP id <msgid>;
//		<date-time>
func receivedHeader(env *messages.Envelope, ip netip.Addr, hostname string) string {
	return fmt.Sprintf("Received: from %s\r\n\tby %s with HTTP id %s;\r\n\t%s\r\n",
		submission.AddressLiteral(ip), hostname, env.ID, env.Arrival.Format(time.RFC1123Z))
}

func remoteIP(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// readMessage reads a raw message into one buffer that starts with hdr,
// sized from the request's Content-Length when it has one. More than max
// bytes in all is errTooBig.
func readMessage(hdr string, body io.Reader, length, max int64) ([]byte, error) {
	limit := max - int64(len(hdr))
	if limit < 0 {
		return nil, errTooBig
	}
	size := int64(32 << 10)
	if length >= 0 {
		size = min(length, limit)
	}
	buf := make([]byte, 0, int64(len(hdr))+size+2) // 2: room for endCRLF
	buf = append(buf, hdr...)
	buf, err := readAll(buf, io.LimitReader(body, limit+1))
	switch {
	case err != nil:
		return nil, refuse(http.StatusBadRequest, 0, "", "reading the message: %v", err)
	case int64(len(buf)) > max:
		return nil, errTooBig
	case len(buf) == len(hdr):
		return nil, refuse(http.StatusBadRequest, 554, "5.6.0", "empty message")
	}
	return buf, nil
}

// readAll is io.ReadAll appending to buf.
func readAll(buf []byte, r io.Reader) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// endCRLF makes b end with CRLF, as a DATA body always does.
func endCRLF(b []byte) []byte {
	if bytes.HasSuffix(b, []byte("\r\n")) {
		return b
	}
	return append(b, '\r', '\n')
}

// admit applies the checks that need no body, after syntax: the
// recipient count, the metadata bounds and the sender's admission rate.
func (h *Handler) admit(env *messages.Envelope) error {
	switch {
	case len(env.Rcpts) == 0:
		return errNoRcpts
	case len(env.Rcpts) > h.cfg.MaxRecipients:
		return refuse(http.StatusBadRequest, 452, "4.5.3", "Too many recipients: %d, at most %d", len(env.Rcpts), h.cfg.MaxRecipients)
	}
	if err := checkMetadata(env.Metadata, h.cfg.MaxMetadata); err != nil {
		return err
	}
	if h.cfg.TakeMessage == nil {
		return nil
	}
	err := h.cfg.TakeMessage(env.From)
	var se *smtp.SMTPError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &se):
		h.log.Info("injection refused", "from", env.From, "code", se.Code, "error", err)
		return smtpRefusal(se)
	}
	h.log.Error("admission rate check failed", "from", env.From, "error", err)
	return errTempFailure
}

// finish checks the size and each recipient, has the message journaled
// and answers.
func (h *Handler) finish(w http.ResponseWriter, r *http.Request, env *messages.Envelope, body []byte) {
	log := h.log.With("msgid", env.ID.String())
	if int64(len(body)) > h.cfg.MaxMessageSize {
		log.Info("message too big", "size", len(body), "max", h.cfg.MaxMessageSize)
		h.fail(w, errTooBig)
		return
	}
	results, rcpts := h.checkRcpts(log, env.Rcpts)
	if len(rcpts) == 0 {
		h.fail(w, &refusal{status: http.StatusUnprocessableEntity, code: 554, enhanced: "5.5.1",
			text: "no valid recipients", rcpts: results})
		return
	}
	env.Rcpts = rcpts
	env.Size = int64(len(body))
	env.Body = bodyType(body)
	env.SMTPUTF8 = needsSMTPUTF8(env, body)
	if err := r.Context().Err(); err != nil {
		log.Info("client went away before the message was journaled")
		return
	}
	id, from, n := env.ID, env.From, len(rcpts)
	if err := h.acc.Accept(env, body); err != nil { // env and body are the acceptor's now
		h.fail(w, acceptError(log, err))
		return
	}
	log.Debug("message accepted", "from", from, "rcpts", n, "size", len(body), "source", "http")
	httpjson.Write(w, http.StatusAccepted, Response{ID: id.String(), Accepted: n,
		Rejected: len(results) - n, Recipients: results})
}

// checkRcpts asks Config.CheckRcpt about each recipient and returns every
// outcome and the recipients kept, indexed anew.
func (h *Handler) checkRcpts(log *slog.Logger, rcpts []messages.Recipient) ([]RecipientResult, []messages.Recipient) {
	results := make([]RecipientResult, len(rcpts))
	kept := rcpts[:0]
	for i, rc := range rcpts {
		results[i] = RecipientResult{Addr: rc.Addr, Status: statusAccepted}
		se := h.checkRcpt(log, rc.Addr)
		if se != nil {
			results[i] = RecipientResult{Addr: rc.Addr, Status: statusRejected, Code: se.Code,
				Enhanced: enhancedString(se.EnhancedCode), Message: se.Message}
			continue
		}
		rc.Index = uint32(len(kept))
		kept = append(kept, rc)
	}
	return results, kept
}

func (h *Handler) checkRcpt(log *slog.Logger, rcpt string) *smtp.SMTPError {
	if h.cfg.CheckRcpt == nil {
		return nil
	}
	err := h.cfg.CheckRcpt(rcpt)
	if err == nil {
		return nil
	}
	log.Info("recipient refused", "rcpt", rcpt, "error", err)
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return se
	}
	return errRcptTemp
}

func acceptError(log *slog.Logger, err error) *refusal {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		log.Info("message refused", "code", se.Code, "error", err)
		return smtpRefusal(se)
	}
	log.Error("accept failed", "error", err)
	return errTempFailure
}

// bodyType is 8BITMIME for a message with any 8-bit byte (RFC 6152).
func bodyType(body []byte) messages.BodyType {
	if has8bit(body) {
		return messages.Body8BitMIME
	}
	return messages.Body7Bit
}

// needsSMTPUTF8 reports whether an address is not ASCII or the header
// section holds UTF-8 (RFC 6532). 8-bit headers that are not UTF-8 are
// legacy, not RFC 6532: SMTPUTF8 would not help them reach anyone.
func needsSMTPUTF8(env *messages.Envelope, body []byte) bool {
	if !ascii(env.From) {
		return true
	}
	for _, rc := range env.Rcpts {
		if !ascii(rc.Addr) {
			return true
		}
	}
	head := body
	if i := bytes.Index(body, []byte("\r\n\r\n")); i >= 0 {
		head = body[:i]
	}
	return has8bit(head) && utf8.Valid(head)
}

func has8bit(b []byte) bool {
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return true
		}
	}
	return false
}

func ascii(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// fail answers err: a refusal as it is, anything else as a 503.
func (h *Handler) fail(w http.ResponseWriter, err error) {
	var rf *refusal
	if !errors.As(err, &rf) {
		h.log.Error("injection failed", "error", err)
		rf = errTempFailure
	}
	if rf.status == http.StatusTooManyRequests || rf.status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", strconv.Itoa(int(h.cfg.RetryAfter.Round(time.Second)/time.Second)))
	}
	httpjson.Write(w, rf.status, ErrorResponse{Error: rf.text, Code: rf.code, Enhanced: rf.enhanced, Recipients: rf.rcpts})
}
