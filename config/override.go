package config

import (
	"fmt"
	"net"
	"strconv"

	"github.com/mtad/mtad/expression"
)

// RelayRoute is the name of the route that SetRelay defines.
const RelayRoute = "relay"

// SetRelay sends every recipient of a non-local domain through the smart
// host at addr ("host:port"), as `mtad serve --relay` does: it defines the
// route "relay" and makes the route strategy choose it (and the "local"
// route for local domains). Call it before the configuration is used.
func (c *Config) SetRelay(addr string) error {
	host, p, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return fmt.Errorf("--relay: bad address %q (want host:port)", addr)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 1 || port > 65535 {
		return fmt.Errorf("--relay: bad port in %q", addr)
	}
	c.Queue.Route[RelayRoute] = Route{Type: RouteRelay, Address: host, Port: port, Protocol: "smtp"}
	route := "'" + RelayRoute + "'"
	if r, ok := c.Queue.Route["local"]; ok && r.Type == RouteLocal {
		route = "is_local_domain(rcpt_domain) ? 'local' : '" + RelayRoute + "'"
	}
	sel, err := expression.Compile("--relay", route, expression.Funcs{LocalDomains: c.Session.LocalDomains})
	if err != nil {
		return err
	}
	c.Queue.Strategy.Route = sel
	return nil
}

// SetListen replaces every listener with one submission listener on addr.
func (c *Config) SetListen(addr string) error {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return fmt.Errorf("--listen: bad address %q (want host:port)", addr)
	}
	mode := ListenerPlain
	if c.Server.Certificate != "" {
		mode = ListenerSTARTTLS
	}
	c.Server.Listeners = map[string]Listener{"submission": {Bind: []string{addr}, TLS: mode}}
	return nil
}
