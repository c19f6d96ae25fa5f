// Package config reads mtad's TOML configuration into one typed, validated
// value. Defaults live in code (and in the embedded default file, which is
// the commented example `mtad config default` prints); every error names the
// file, the key and the problem. A Config is immutable once loaded: parts of
// the engine receive the pieces they need.
package config

import (
	"net/netip"
	"time"

	"github.com/mtad/mtad/expression"
)

// Config is the whole configuration.
type Config struct {
	File     string // where it was read from; "(default)" for the embedded one
	Server   Server
	Session  Session
	Resolver Resolver
	Log      Log
	Queue    Queue
}

// Server holds the node-wide settings.
type Server struct {
	Hostname        string
	DataDir         string
	Listeners       map[string]Listener
	ShutdownTimeout time.Duration
}

// Listener is one SMTP listener.
type Listener struct {
	Bind []string
}

// Session holds the submission (admission) settings.
type Session struct {
	TrustedNetworks []netip.Prefix
	LocalDomains    []string
	MaxMessageSize  int64
	MaxRecipients   int
	MaxConnections  int
	Timeout         time.Duration
}

// Resolver holds the DNS settings.
type Resolver struct {
	Nameservers []string
	Timeout     time.Duration
	Attempts    int
}

// Log holds logging settings.
type Log struct {
	Level    string // debug, info, warn, error
	Delivery string // path of the delivery log; relative to the data directory; "-" for stdout, "" for none
}

// Queue holds the delivery strategies and the selectors that pick them.
type Queue struct {
	Virtual    map[string]VirtualQueue
	Schedule   map[string]Schedule
	Route      map[string]Route
	Connection map[string]Connection
	Strategy   Strategy
}

// VirtualQueue is one queue actor's settings.
type VirtualQueue struct {
	Concurrency            int           // deliveries in flight for the queue
	DestinationConnections int           // connections per destination
	MessagesPerConnection  int           // transactions before a connection is recycled
	IdleTimeout            time.Duration // an idle connection is closed after this
}

// Schedule is a retry plan.
type Schedule struct {
	Queue       string
	Retry       []time.Duration // the last one repeats
	Notify      []time.Duration // delayed-DSN times from arrival
	Expire      time.Duration   // zero when MaxAttempts is used
	MaxAttempts int
}

// Route types.
const (
	RouteMX    = "mx"
	RouteRelay = "relay"
)

// Route says where a recipient's message goes.
type Route struct {
	Type string

	// mx
	MaxMX         int
	MaxMultihomed int
	IPLookup      string
	Port          int

	// relay
	Address     string
	Protocol    string // smtp or lmtp
	ImplicitTLS bool
}

// Timeouts are the per-stage SMTP timeouts of a connection strategy.
type Timeouts struct {
	Connect, Greeting, EHLO, MailFrom, RcptTo, Data time.Duration
}

// Connection says how to connect.
type Connection struct {
	EHLOHostname string
	SourceIPs    []netip.Addr
	Timeout      Timeouts
}

// Strategy holds the compiled selectors.
type Strategy struct {
	Schedule   *expression.Selector
	Route      *expression.Selector
	Connection *expression.Selector
}
