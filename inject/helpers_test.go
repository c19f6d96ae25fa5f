package inject

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/mtad/mtad/messages"
)

// fakeAcceptor records what it accepts; fail, while set, is returned
// instead.
type fakeAcceptor struct {
	mu   sync.Mutex
	next messages.MsgID
	msgs []acceptedMsg
	fail error
}

type acceptedMsg struct {
	env  messages.Envelope
	body []byte
}

func (a *fakeAcceptor) NextID() messages.MsgID {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.next++
	return a.next
}

func (a *fakeAcceptor) Accept(env *messages.Envelope, body []byte) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.fail != nil {
		return a.fail
	}
	a.msgs = append(a.msgs, acceptedMsg{env: *env, body: bytes.Clone(body)})
	return nil
}

func (a *fakeAcceptor) setFail(err error) {
	a.mu.Lock()
	a.fail = err
	a.mu.Unlock()
}

func (a *fakeAcceptor) accepted() []acceptedMsg {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]acceptedMsg(nil), a.msgs...)
}

// only returns the one message accepted so far.
func (a *fakeAcceptor) only(t *testing.T) acceptedMsg {
	t.Helper()
	msgs := a.accepted()
	if len(msgs) != 1 {
		t.Fatalf("%d messages accepted, want 1", len(msgs))
	}
	return msgs[0]
}

// harness is a Handler behind an httptest server on 127.0.0.1.
type harness struct {
	t   *testing.T
	acc *fakeAcceptor
	srv *httptest.Server
}

func testConfig() Config {
	return Config{Hostname: "mx.test", MaxMessageSize: 64 << 10, MaxRecipients: 5, MaxMetadata: 4}
}

func start(t *testing.T, cfg Config) *harness {
	acc := &fakeAcceptor{}
	srv := httptest.NewServer(New(cfg, acc, nil))
	t.Cleanup(srv.Close)
	return &harness{t: t, acc: acc, srv: srv}
}

// answer is a decoded answer.
type answer struct {
	status int
	header http.Header
	ok     Response
	err    ErrorResponse
}

// post sends body with the given headers (pairs of name, value; a name
// may repeat) and decodes the answer.
func (h *harness) post(contentType string, body io.Reader, hdrs ...string) answer {
	h.t.Helper()
	req, err := http.NewRequest(http.MethodPost, h.srv.URL+"/api/v1/inject", body)
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	for i := 0; i+1 < len(hdrs); i += 2 {
		req.Header.Add(hdrs[i], hdrs[i+1])
	}
	return h.do(req)
}

func (h *harness) do(req *http.Request) answer {
	h.t.Helper()
	resp, err := h.srv.Client().Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		h.t.Fatalf("answer Content-Type %q, body %s", ct, raw)
	}
	a := answer{status: resp.StatusCode, header: resp.Header}
	dst := any(&a.err)
	if resp.StatusCode == http.StatusAccepted {
		dst = &a.ok
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		h.t.Fatalf("answer %d %s: %v", resp.StatusCode, raw, err)
	}
	return a
}

func (h *harness) raw(msg string, hdrs ...string) answer {
	h.t.Helper()
	return h.post("message/rfc822", strings.NewReader(msg), hdrs...)
}

func (h *harness) json(v any) answer {
	h.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		h.t.Fatal(err)
	}
	return h.post("application/json", bytes.NewReader(b))
}

func (h *harness) jsonText(s string) answer {
	h.t.Helper()
	return h.post("application/json", strings.NewReader(s))
}

// wantError checks a refusal's status, SMTP reply and that its text holds
// want.
func (a answer) wantError(t *testing.T, status, code int, enhanced, want string) {
	t.Helper()
	if a.status != status || a.err.Code != code || a.err.Enhanced != enhanced || !strings.Contains(a.err.Error, want) {
		t.Errorf("got %d %+v, want %d %d %s %q", a.status, a.err, status, code, enhanced, want)
	}
}

// obj is a JSON object literal.
type obj = map[string]any
