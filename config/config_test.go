package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mtad/mtad/expression"
)

func TestDefaultParses(t *testing.T) {
	c, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Server.Listeners["submission"].Bind; len(got) != 1 || got[0] != "127.0.0.1:2525" {
		t.Errorf("default listener %v, want 127.0.0.1:2525", got)
	}
	if c.Server.DataDir != "data" || c.Session.MaxMessageSize != 50<<20 || c.Session.MaxRecipients != 1000 {
		t.Errorf("defaults wrong: %+v %+v", c.Server, c.Session)
	}
	s := c.Queue.Schedule["default"]
	if len(s.Retry) != 7 || s.Retry[6] != 2*time.Hour || s.Expire != 5*24*time.Hour {
		t.Errorf("default schedule %+v", s)
	}
	name, err := c.Queue.Strategy.Route.Eval(&expression.Env{RcptDomain: "x.test"})
	if err != nil || name != "mx" {
		t.Errorf("default route = %q, %v; want mx", name, err)
	}
}

// A file that sets nothing gets the same defaults as the embedded one.
func TestEmptyFileHasDefaults(t *testing.T) {
	c, err := Parse("empty.toml", nil)
	if err != nil {
		t.Fatal(err)
	}
	d, _ := Default()
	if c.Session.MaxRecipients != d.Session.MaxRecipients || c.Queue.Virtual["default"] != d.Queue.Virtual["default"] {
		t.Errorf("empty file %+v differs from default %+v", c.Queue.Virtual, d.Queue.Virtual)
	}
}

func TestErrorsNameFileAndKey(t *testing.T) {
	cases := []struct {
		name, toml string
		want       []string
	}{
		{"unknown key", "[session]\nmax-recipents = 5\n", []string{"bad.toml", "line 2", "session.max-recipents"}},
		{"bad toml", "[session\n", []string{"bad.toml", "line 1"}},
		{"wrong type", "[session]\nmax-recipients = \"lots\"\n", []string{"bad.toml", "session.max-recipients"}},
		{"bad duration", "[queue.schedule.default]\nretry = [\"2m\", \"soon\"]\n", []string{"queue.schedule.default.retry[1]", "soon"}},
		{"bad size", "[session]\nmax-message-size = \"big\"\n", []string{"session.max-message-size"}},
		{"bad network", "[session]\ntrusted-networks = [\"10.0.0.0/33\"]\n", []string{"session.trusted-networks[0]"}},
		{"undefined queue", "[queue.schedule.x]\nqueue = \"nope\"\n", []string{"queue.schedule.x.queue", "nope"}},
		{"expire and attempts", "[queue.schedule.default]\nexpire = \"1d\"\nmax-attempts = 3\n", []string{"queue.schedule.default", "not both"}},
		{"route type", "[queue.route.r]\ntype = \"carrier-pigeon\"\n", []string{"queue.route.r.type"}},
		{"relay without address", "[queue.route.r]\ntype = \"relay\"\n", []string{"queue.route.r.address"}},
		{"ip lookup", "[queue.route.mx]\ntype = \"mx\"\nip-lookup = \"ipv5\"\n", []string{"queue.route.mx.ip-lookup"}},
		{"port", "[queue.route.mx]\ntype = \"mx\"\nport = 70000\n", []string{"queue.route.mx.port"}},
		{"timeout stage", "[queue.connection.c]\ntimeout = { dial = \"1s\" }\n", []string{"queue.connection.c.timeout.dial"}},
		{"source ip", "[queue.connection.c]\nsource-ips = [\"1.2.3\"]\n", []string{"queue.connection.c.source-ips[0]"}},
		{"unknown variable", "[queue.strategy]\nroute = \"rcpt_domian == 'x' ? 'mx' : 'mx'\"\n", []string{"queue.strategy.route", "rcpt_domian"}},
		{"type error", "[queue.strategy]\nroute = \"retry_num + 1\"\n", []string{"queue.strategy.route"}},
		{"undefined strategy", "[queue.strategy]\nroute = [ { if = \"retry_num > 2\", then = \"'backup'\" }, { else = \"'mx'\" } ]\n", []string{"queue.strategy.route[0]", "backup", "queue.route.backup"}},
		{"no else", "[queue.strategy]\nroute = [ { if = \"retry_num > 2\", then = \"'mx'\" } ]\n", []string{"queue.strategy.route[0]", "else"}},
		{"bad condition", "[queue.strategy]\nroute = [ { if = \"rcpt\", then = \"'mx'\" }, { else = \"'mx'\" } ]\n", []string{"queue.strategy.route[0].if"}},
		{"listener", "[server.listener.s]\nbind = [\"nonsense\"]\n", []string{"server.listener.s.bind[0]"}},
		{"log level", "[log]\nlevel = \"chatty\"\n", []string{"log.level"}},
		{"nameserver", "[resolver]\nnameservers = [\"dns.example\"]\n", []string{"resolver.nameservers[0]"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("bad.toml", []byte(c.toml))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestStrategies(t *testing.T) {
	c, err := Parse("s.toml", []byte(`
[session]
local-domains = ["local.test"]
[queue.virtual.bulk]
concurrency = 4
[queue.schedule.news]
queue = "bulk"
max-attempts = 3
[queue.route.backup]
type = "relay"
address = "127.0.0.1"
port = 2526
[queue.strategy]
schedule = [ { if = "sender_domain == 'news.test'", then = "'news'" }, { else = "'default'" } ]
route = [ { if = "retry_num > 2 || is_local_domain(rcpt_domain)", then = "'backup'" }, { else = "'mx'" } ]
`))
	if err != nil {
		t.Fatal(err)
	}
	sched := c.Queue.Strategy.Schedule
	if n, _ := sched.Eval(&expression.Env{SenderDomain: "news.test"}); n != "news" {
		t.Errorf("schedule for news.test = %q", n)
	}
	if n, _ := sched.Eval(&expression.Env{SenderDomain: "other.test"}); n != "default" {
		t.Errorf("schedule for other.test = %q", n)
	}
	route := c.Queue.Strategy.Route
	for _, tc := range []struct {
		env  expression.Env
		want string
	}{
		{expression.Env{RetryNum: 0, RcptDomain: "x.test"}, "mx"},
		{expression.Env{RetryNum: 3, RcptDomain: "x.test"}, "backup"},
		{expression.Env{RetryNum: 0, RcptDomain: "LOCAL.test"}, "backup"},
	} {
		if n, err := route.Eval(&tc.env); n != tc.want || err != nil {
			t.Errorf("route(%+v) = %q, %v; want %q", tc.env, n, err, tc.want)
		}
	}
	if c.Queue.Schedule["news"].MaxAttempts != 3 || c.Queue.Virtual["bulk"].Concurrency != 4 {
		t.Errorf("definitions not read: %+v %+v", c.Queue.Schedule["news"], c.Queue.Virtual["bulk"])
	}
}

func TestOverrides(t *testing.T) {
	c, _ := Default()
	if err := c.SetRelay("127.0.0.1:2600"); err != nil {
		t.Fatal(err)
	}
	if n, _ := c.Queue.Strategy.Route.Eval(&expression.Env{}); n != RelayRoute {
		t.Errorf("route after SetRelay = %q", n)
	}
	if r := c.Queue.Route[RelayRoute]; r.Address != "127.0.0.1" || r.Port != 2600 {
		t.Errorf("relay route %+v", r)
	}
	if err := c.SetRelay("nonsense"); err == nil || !strings.Contains(err.Error(), "--relay") {
		t.Errorf("bad --relay: %v", err)
	}
	if err := c.SetListen("127.0.0.1"); err == nil || !strings.Contains(err.Error(), "--listen") {
		t.Errorf("bad --listen: %v", err)
	}
}

func TestLoadNamesMissingFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "nope.toml")
	if _, err := Load(p); err == nil || !strings.Contains(err.Error(), p) {
		t.Errorf("missing file: %v", err)
	}
	if err := os.WriteFile(p, []byte("[session]\nmax-recipients = 0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(p); err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "session.max-recipients") {
		t.Errorf("bad file: %v", err)
	}
}

func TestParseDurationAndSize(t *testing.T) {
	for s, want := range map[string]time.Duration{"30s": 30 * time.Second, "5d": 120 * time.Hour, "1d12h": 36 * time.Hour} {
		if d, err := parseDuration("k", s); err != nil || d != want {
			t.Errorf("parseDuration(%q) = %v, %v", s, d, err)
		}
	}
	for _, bad := range []string{"", "0s", "-1m", "xd", "d"} {
		if _, err := parseDuration("k", bad); err == nil {
			t.Errorf("parseDuration(%q) accepted", bad)
		}
	}
	for s, want := range map[string]int64{"50MB": 50 << 20, "512kb": 512 << 10, "1024": 1024, "1G": 1 << 30} {
		if n, err := parseSize("k", s); err != nil || n != want {
			t.Errorf("parseSize(%q) = %d, %v", s, n, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add(DefaultText())
	f.Add([]byte("[queue.strategy]\nroute = [ { if = \"retry_num > 1\", then = \"'mx'\" }, { else = \"'mx'\" } ]\n"))
	f.Add([]byte("[session]\nmax-message-size = \"1KB\"\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("fuzz.toml", data)
		if err == nil && c.Queue.Strategy.Route == nil {
			t.Fatal("a valid config without a route selector")
		}
	})
}

func TestRelayAuthSecrets(t *testing.T) {
	file := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(file, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("MTAD_TEST_SECRET", "from-env")
	relay := func(auth string) string {
		return "[queue.route.r]\ntype = \"relay\"\naddress = \"127.0.0.1\"\nauth = " + auth + "\n"
	}
	for auth, want := range map[string]string{
		`{ username = "u", secret = "inline" }`:                    "inline",
		`{ username = "u", secret-env = "MTAD_TEST_SECRET" }`:      "from-env",
		`{ username = "u", secret-file = "` + file + `" }`:         "from-file",
		`{ username = "u", secret = "x", mechanisms = ["login"] }`: "x",
	} {
		c, err := Parse("auth.toml", []byte(relay(auth)))
		if err != nil {
			t.Fatalf("%s: %v", auth, err)
		}
		if a := c.Queue.Route["r"].Auth; a == nil || a.Secret != want || a.Username != "u" {
			t.Errorf("%s: auth %+v, want secret %q", auth, a, want)
		}
	}
	for auth, key := range map[string]string{
		`{ username = "u" }`: "queue.route.r.auth",
		`{ username = "u", secret = "a", secret-env = "B" }`:      "queue.route.r.auth",
		`{ username = "u", secret-env = "MTAD_TEST_UNSET_XYZ" }`:  "queue.route.r.auth.secret-env",
		`{ username = "u", secret-file = "/nonexistent/secret" }`: "queue.route.r.auth.secret-file",
		`{ secret = "x" }`: "queue.route.r.auth.username",
		`{ username = "u", secret = "x", mechanisms = ["CRAM"] }`: "queue.route.r.auth.mechanisms[0]",
	} {
		_, err := Parse("auth.toml", []byte(relay(auth)))
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("%s: error %v, want one naming %s", auth, err, key)
		}
		if err != nil && strings.Contains(err.Error(), "from-env") {
			t.Errorf("a secret leaked into an error: %v", err)
		}
	}
}

func TestLocalRoute(t *testing.T) {
	c, err := Parse("l.toml", []byte("[server]\ndata-dir = \"/var/lib/mtad\"\n[queue.route.lm]\ntype = \"local\"\nlmtp = \"127.0.0.1:24\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.MaildirPath(c.Queue.Route["local"]); got != "/var/lib/mtad/mail" {
		t.Errorf("default local route Maildir at %q", got)
	}
	if c.Queue.Route["lm"].LMTP != "127.0.0.1:24" {
		t.Errorf("lmtp route %+v", c.Queue.Route["lm"])
	}
	for toml, key := range map[string]string{
		"[queue.route.x]\ntype = \"local\"\nlmtp = \"nonsense\"\n":                                              "queue.route.x.lmtp",
		"[queue.route.x]\ntype = \"local\"\nlmtp = \"a:1\"\nmaildir = \"m\"\n":                                  "queue.route.x",
		"[queue.route.x]\ntype = \"local\"\naddress = \"a\"\n":                                                  "queue.route.x.address",
		"[queue.route.x]\ntype = \"mx\"\nmaildir = \"m\"\n":                                                     "queue.route.x.maildir",
		"[queue.connection.c]\nsource-ips = [\"127.0.0.2\"]\nehlo-hostnames = { \"127.0.0.3\" = \"x.test\" }\n": "queue.connection.c.ehlo-hostnames",
	} {
		if _, err := Parse("l.toml", []byte(toml)); err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("%q: error %v, want one naming %s", toml, err, key)
		}
	}
}

func TestTLSSettings(t *testing.T) {
	c, err := Parse("t.toml", []byte(`
[server.tls]
certificate = "/etc/mtad/cert.pem"
private-key = "/etc/mtad/key.pem"
[server.listener.smtps]
bind = ["127.0.0.1:465"]
tls = "implicit"
[server.listener.sub]
bind = ["127.0.0.1:587"]
[queue.tls.strict]
starttls = "require"
dane = "require"
[report.tls]
enable = true
send-at = "01:15"
[queue.strategy]
tls = [ { if = "ends_with(mx, '.secure.test')", then = "'strict'" }, { else = "'default'" } ]
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Server.Listeners["smtps"].TLS != ListenerImplicit || c.Server.Listeners["sub"].TLS != ListenerSTARTTLS {
		t.Errorf("listener TLS modes: %+v", c.Server.Listeners)
	}
	if s := c.Queue.TLS["strict"]; s.STARTTLS != TLSRequire || s.DANE != TLSRequire || s.MTASTS != TLSOptional {
		t.Errorf("strict: %+v", s)
	}
	if c.Report.TLS.SendAt != 75*time.Minute || c.TLS.MTASTSPort != 443 {
		t.Errorf("report/tls: %+v %+v", c.Report.TLS, c.TLS)
	}
	for toml, key := range map[string]string{
		"[server.listener.x]\nbind = [\"127.0.0.1:1\"]\ntls = \"implicit\"\n": "server.listener.x.tls",
		"[server.tls]\ncertificate = \"a\"\n":                                 "server.tls",
		"[queue.tls.x]\nstarttls = \"maybe\"\n":                               "queue.tls.x.starttls",
		"[queue.tls.x]\nstarttls = \"disable\"\ndane = \"require\"\n":         "queue.tls.x",
		"[report.tls]\nsend-at = \"25:00\"\n":                                 "report.tls.send-at",
		"[queue.strategy]\ntls = \"'nope'\"\n":                                "queue.strategy.tls",
	} {
		if _, err := Parse("t.toml", []byte(toml)); err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("%q: error %v, want one naming %s", toml, err, key)
		}
	}
}

// One check reports a problem in every section, each naming its key.
func TestEveryErrorReported(t *testing.T) {
	_, err := Parse("bad.toml", []byte("[session]\nmax-recipients = 0\n[queue.schedule.default]\nretry = [\"soon\"]\n[queue.route.x]\ntype = \"pigeon\"\n"))
	if err == nil {
		t.Fatal("no error")
	}
	for _, key := range []string{"session.max-recipients", "queue.schedule.default.retry[0]", "queue.route.x.type"} {
		if !strings.Contains(err.Error(), key) {
			t.Errorf("error %q does not name %s", err, key)
		}
	}
}
