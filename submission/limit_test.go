package submission

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"
)

// One connection past MaxConnections is answered 421 4.7.0 and closed;
// once a connection closes, a new one is served again.
func TestMaxConnections(t *testing.T) {
	cfg := testConfig()
	cfg.MaxConnections = 2
	h := start(t, cfg)
	a := h.raw(true)
	h.raw(true)
	conn, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(waitFor))
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "421 4.7.0 ") {
		t.Fatalf("third connection got %q, %v; want 421 4.7.0", line, err)
	}
	a.expect("QUIT", "221")
	deadline := time.Now().Add(waitFor)
	for {
		c, err := net.Dial("tcp", h.addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(waitFor))
		line, _ := bufio.NewReader(c).ReadString('\n')
		c.Close()
		if strings.HasPrefix(line, "220 ") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no connection served after one closed; last reply %q", line)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
