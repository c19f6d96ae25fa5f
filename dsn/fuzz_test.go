package dsn

import (
	"strings"
	"testing"

	"github.com/mtad/mtad/messages"
)

// FuzzBuild feeds Build what comes from outside (addresses, ORCPT, ENVID,
// reply text, the original message) and checks that it never panics, that
// what it returns parses as a DSN with only our header fields and one
// delivery-status block per recipient, and that it refuses only a bad
// return path.
func FuzzBuild(f *testing.F) {
	f.Add("alice@example.org", "bob@example.net", "rfc822;bob@example.net", "ENV1",
		"No such user", []byte(testOriginal), 550, false, true)
	f.Add("a@b", "c@d\r\nBcc: e@f", "rfc822;x\r\nX-Injected: 1", "id\r\nX-Injected: 1",
		"text\r\n\r\n--=_\r\nX-Injected: 1", []byte("X: y\r\n\r\n--=_0000000000000007\r\n"), 451, true, true)
	f.Add("andré@example.org", "jörg@bücher.example", `utf-8;j\x{F6}rg@b\x{FC}cher.example`, "",
		"Empfänger unbekannt", []byte("Subject: Grüße\r\n\r\nHallo\r\n"), 550, true, false)
	f.Add("a@b", strings.Repeat("x", 3000), "utf-8;\\x{", strings.Repeat("y ", 1000),
		strings.Repeat("z", 5000), []byte{}, 0, false, false)
	f.Add("a@b", "c@d", "", "", "\xff\xfe\u202e\u2028", []byte("A: b\nC: d\n\nbody\x00\r"), 250, false, true)
	f.Fuzz(func(t *testing.T, from, addr, orcpt, envid, text string, original []byte, code int, smtputf8, full bool) {
		env := &messages.Envelope{ID: 7, From: from, EnvID: envid, SMTPUTF8: smtputf8, Arrival: testArrival}
		if full {
			env.Ret = messages.RetFull
		}
		r := Report{ReportingMTA: "mta.example.org", Envelope: env, Original: original, Now: testNow, MaxFull: 1 << 10,
			Recipients: []Recipient{
				{Addr: addr, ORcpt: orcpt, Action: Failed, RemoteMTA: text,
					Reply: messages.Reply{Code: code, Enhanced: text, Text: text}},
				{Addr: "b@example.net", Action: Delayed, WillRetryUntil: testNow,
					Reply: messages.Reply{Text: text, Class: text}},
			}}
		out, err := Build(r)
		if err != nil {
			if from != "" && addr != "" && checkPath(from, smtputf8) == nil {
				t.Fatalf("Build refused a good return path: %v", err)
			}
			return
		}
		checkDSN(t, out, r)
	})
}
