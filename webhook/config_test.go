package webhook

import (
	"strings"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	ok := func() Endpoint { return Endpoint{Name: "ops-1", URL: "https://hooks.example/mtad"} }
	for _, tc := range []struct {
		name string
		edit func(*Endpoint)
		want string // in the error; empty for none
	}{
		{"valid", func(*Endpoint) {}, ""},
		{"valid all fields", func(e *Endpoint) {
			e.URL, e.Events = "http://127.0.0.1:8080/x", []string{"delivered", "failed"}
			e.Headers = map[string]string{"Authorization": "Bearer x"}
			e.BatchSize, e.FlushInterval, e.Timeout = 10, time.Second, time.Second
			e.MinBackoff, e.MaxBackoff = time.Second, time.Minute
		}, ""},
		{"no name", func(e *Endpoint) { e.Name = "" }, "webhook.endpoint[0].name: missing"},
		{"bad name", func(e *Endpoint) { e.Name = "Ops" }, "webhook.endpoint[0].name"},
		{"long name", func(e *Endpoint) { e.Name = strings.Repeat("a", 65) }, "webhook.endpoint[0].name"},
		{"no url", func(e *Endpoint) { e.URL = "" }, "webhook.endpoint.ops-1.url: missing"},
		{"scheme", func(e *Endpoint) { e.URL = "ftp://hooks.example/" }, "webhook.endpoint.ops-1.url: scheme"},
		{"no host", func(e *Endpoint) { e.URL = "https:///x" }, "webhook.endpoint.ops-1.url: no host"},
		{"relative", func(e *Endpoint) { e.URL = "hooks.example/x" }, "webhook.endpoint.ops-1.url"},
		{"kind", func(e *Endpoint) { e.Events = []string{"bounced"} }, "webhook.endpoint.ops-1.events"},
		{"header name", func(e *Endpoint) { e.Headers = map[string]string{"X Bad": "1"} }, "webhook.endpoint.ops-1.headers"},
		{"header value", func(e *Endpoint) { e.Headers = map[string]string{"X-A": "1\r\nX-B: 2"} }, "webhook.endpoint.ops-1.headers"},
		{"batch size", func(e *Endpoint) { e.BatchSize = -1 }, "webhook.endpoint.ops-1.batch-size"},
		{"batch size big", func(e *Endpoint) { e.BatchSize = 1 << 20 }, "webhook.endpoint.ops-1.batch-size"},
		{"flush interval", func(e *Endpoint) { e.FlushInterval = -time.Second }, "webhook.endpoint.ops-1.flush-interval"},
		{"timeout", func(e *Endpoint) { e.Timeout = -time.Second }, "webhook.endpoint.ops-1.timeout"},
		{"min backoff", func(e *Endpoint) { e.MinBackoff = -1 }, "webhook.endpoint.ops-1.min-backoff"},
		{"backoffs", func(e *Endpoint) { e.MinBackoff = 10 * time.Minute }, "webhook.endpoint.ops-1.max-backoff"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ep := ok()
			tc.edit(&ep)
			err := Config{Endpoints: []Endpoint{ep}}.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("error %v", err)
			case tc.want != "" && err == nil:
				t.Errorf("accepted, want an error with %q", tc.want)
			case tc.want != "" && !strings.Contains(err.Error(), tc.want):
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

func TestValidateDuplicate(t *testing.T) {
	ep := Endpoint{Name: "ops", URL: "https://hooks.example/"}
	err := Config{Endpoints: []Endpoint{ep, ep}}.Validate()
	if err == nil || !strings.Contains(err.Error(), `webhook.endpoint[1].name: endpoint "ops" defined twice`) {
		t.Errorf("duplicate: %v", err)
	}
	if _, err := New(Config{Endpoints: []Endpoint{ep, ep}}, nil, nil, nil); err == nil {
		t.Errorf("New accepted an invalid config")
	}
}
