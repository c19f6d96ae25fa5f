package server

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/mtad/mtad/internal/testdns"
	"github.com/mtad/mtad/internal/testsink"
)

// mxLab starts sinks on 127.0.0.2 and 127.0.0.3 on one port, a DNS server
// for the zone, and a node whose mx route uses them.
func mxLab(t *testing.T) (s *Server, dir string, mx1, mx2 *testsink.Sink) {
	t.Helper()
	mx1 = testsink.StartOn(t, "127.0.0.2:0")
	_, port, _ := net.SplitHostPort(mx1.Addr)
	mx2 = testsink.StartOn(t, "127.0.0.3:"+port)
	zone := `
$ORIGIN test.
pref.test.     IN MX 20 mx2.lab.test.
pref.test.     IN MX 10 mx1.lab.test.
down.test.     IN MX 10 dead.lab.test.
down.test.     IN MX 20 mx2.lab.test.
implicit.test. IN A 127.0.0.3
null.test.     IN MX 0 .
mx1.lab.test.  IN A 127.0.0.2
mx2.lab.test.  IN A 127.0.0.3
dead.lab.test. IN A 127.0.0.4
`
	dns := testdns.Start(t, zone)
	s, dir = startNode(t, fmt.Sprintf(`
[resolver]
nameservers = [%q]
timeout = "2s"
[queue.route.mx]
type = "mx"
port = %s
[queue.connection.default]
timeout = { connect = "2s", greeting = "5s" }
`, dns.Addr, port))
	return s, dir, mx1, mx2
}

func TestMXRoute(t *testing.T) {
	s, dir, mx1, mx2 := mxLab(t)
	addr := s.Addrs()[0].String()
	cases := []struct {
		rcpt string
		want *testsink.Sink
	}{
		{"a@pref.test", mx1},     // lowest preference first
		{"b@down.test", mx2},     // first MX refuses connections: the next one
		{"c@implicit.test", mx2}, // no MX: the domain's own A record
	}
	for _, c := range cases {
		t.Run(c.rcpt, func(t *testing.T) {
			if err := send(t, addr, "s@sender.test", []string{c.rcpt}, message(c.rcpt)); err != nil {
				t.Fatal(err)
			}
			waitFor(t, c.rcpt+" delivered", 15*time.Second, func() bool {
				return eventFor(events(t, dir), "delivered", c.rcpt) != nil
			})
			if !contains(c.want.Rcpts(), c.rcpt) {
				t.Errorf("%s did not arrive at the expected MX (%s); mx1 got %v, mx2 got %v", c.rcpt, c.want.Addr, mx1.Rcpts(), mx2.Rcpts())
			}
		})
	}
	t.Run("null MX fails permanently", func(t *testing.T) {
		if err := send(t, addr, "s@sender.test", []string{"d@null.test"}, message("null")); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "d@null.test failed", 10*time.Second, func() bool {
			return eventFor(events(t, dir), "failed", "d@null.test") != nil
		})
		e := eventFor(events(t, dir), "failed", "d@null.test")
		if e.Code != 556 || e.Enhanced != "5.1.10" || e.Attempt != 1 {
			t.Errorf("null MX: want 556 5.1.10 on the first attempt, got %+v", e)
		}
	})
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
