// Package config reads mtad's TOML configuration into one typed, validated
// value. Defaults live in code (and in the embedded default file, which is
// the commented example `mtad config default` prints); every error names the
// file, the key and the problem. A Config is immutable once loaded: parts of
// the engine receive the pieces they need.
package config

import (
	"net/netip"
	"path/filepath"
	"regexp"
	"time"

	"github.com/mtad/mtad/expression"
	"github.com/mtad/mtad/limits"
	"github.com/mtad/mtad/webhook"
)

// Config is the whole configuration.
type Config struct {
	File     string // where it was read from; "(default)" for the embedded one
	Server   Server
	Session  Session
	Resolver Resolver
	Log      Log
	TLS      TLS
	Report   Report
	Queue    Queue
	Webhooks webhook.Config // delivery events POSTed to the operator's endpoints
}

// TLS holds node-wide outbound TLS settings.
type TLS struct {
	CAFile        string        // extra PEM roots trusted for outbound TLS and MTA-STS fetches
	MTASTSPort    int           // port of MTA-STS policy hosts (443; settable for labs)
	MTASTSTimeout time.Duration // bound on one policy fetch
}

// Report holds outgoing report settings.
type Report struct {
	TLS TLSReport
}

// TLSReport configures RFC 8460 aggregate reports.
type TLSReport struct {
	Enable       bool
	From         string        // reporter address; default postmaster@<hostname>
	Organization string        // default <hostname>
	SendAt       time.Duration // time of day (UTC) the previous day's reports go out
}

// Server holds the node-wide settings.
type Server struct {
	Hostname        string
	DataDir         string
	Listeners       map[string]Listener
	ShutdownTimeout time.Duration
	GCPercent       int    // Go's GOGC for the daemon
	MemoryLimit     int64  // Go's GOMEMLIMIT for the daemon, in bytes; 0: none
	Certificate     string // PEM certificate chain for submission TLS
	PrivateKey      string // PEM private key
	Management      Management
}

// Management is the operator's HTTP listener (metrics, profiling).
type Management struct {
	Bind  string // host:port; "" disables it
	Token string // bearer token every request must carry; "" only on loopback
}

// Listener TLS modes.
const (
	ListenerPlain    = "none"     // no TLS
	ListenerSTARTTLS = "starttls" // STARTTLS offered (RFC 3207)
	ListenerImplicit = "implicit" // TLS from the first byte (RFC 8314)
)

// Listener is one SMTP listener.
type Listener struct {
	Bind []string
	TLS  string // none, starttls or implicit
}

// Session holds the submission (admission) settings.
type Session struct {
	TrustedNetworks []netip.Prefix
	LocalDomains    []string
	MaxMessageSize  int64
	MaxRecipients   int
	MaxConnections  int
	Timeout         time.Duration
	Limits          AdmissionLimits
	Auth            SubmissionAuth
}

// SubmissionAuth is SMTP AUTH on submission (PLAIN and LOGIN, over TLS only).
type SubmissionAuth struct {
	Users           map[string]string // user -> bcrypt hash; empty: AUTH not offered
	FailDelay       time.Duration
	LockoutFailures int
	LockoutWindow   time.Duration
	LockoutDuration time.Duration
}

// AdmissionLimits bound what one client, sender or user may submit.
type AdmissionLimits struct {
	ConnectionsPerIP  int         // 0: none; past it 421 4.7.0
	MessagesPerIP     limits.Rate // zero: none; past it 451 4.7.1
	MessagesPerSender limits.Rate
	MessagesPerUser   limits.Rate
	Exempt            []netip.Prefix
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
	TLS        map[string]TLSStrategy
	Quota      map[string]Quota
	Limit      []Limit // sorted by name
	Site       map[string]Site
	Shaping    []ShapingRule // sorted by name
	Strategy   Strategy
}

// Limit is an outbound limit enforced by destination actors.
type Limit struct {
	Name            string
	Key             []string    // rcpt_domain, sender, sender_domain, mx, remote_ip, local_ip, queue_name, site
	Rate            limits.Rate // messages per period; zero: none
	ConnectionRate  limits.Rate // connections opened per period; zero: none
	Concurrency     int         // connections in flight; 0: none
	MessagesPerConn int         // 0: none
	Match           *expression.Predicate
}

// Shaping actions.
const (
	ShapeSuspend = "suspend" // no delivery to the destination for the duration
	ShapeReduce  = "reduce"  // the destination's connections scaled by Factor
	ShapeFail    = "fail"    // the recipients given this reply fail permanently
)

// ShapingRule reacts to a remote reply for a while (response-driven shaping).
type ShapingRule struct {
	Name     string
	Code     int            // 0: any; 421, or a class like 4 (any 4xx) or 45 (any 45x)
	Enhanced string         // prefix: "4.7" matches 4.7.x; "" any
	Text     *regexp.Regexp // nil: any
	Site     string         // "": any destination
	Action   string
	Factor   float64 // for reduce, in (0,1)
	Duration time.Duration
}

// Site is a provider: the destinations whose MX hosts end in one of its
// suffixes share the budgets of limits keyed by site.
type Site struct {
	MXSuffix []string
}

// Quota is a queue quota checked at admission (452 4.3.1 when full).
type Quota struct {
	Key      string                // "", sender, sender_domain, rcpt, rcpt_domain
	Messages int64                 // 0: no limit
	Bytes    int64                 // 0: no limit
	Match    *expression.Predicate // nil: always applies
}

// TLS policy modes.
const (
	TLSDisable  = "disable"
	TLSOptional = "optional"
	TLSRequire  = "require"
)

// TLSStrategy says how to secure a connection to one MX host.
type TLSStrategy struct {
	STARTTLS          string // disable, optional, require
	DANE              string
	MTASTS            string
	AllowInvalidCerts bool
	Timeout           time.Duration // STARTTLS and the handshake
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
	RouteLocal = "local"
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
	Auth        *Auth

	// local: Maildir under the data directory, or an LMTP server
	Maildir string // a relative path is under server.data-dir (see MaildirPath)
	LMTP    string // host:port; when set, local delivery goes there instead of Maildir
}

// Auth is a relay's SMTP AUTH credentials. The secret comes from the file,
// an environment variable or a file, read once at load.
type Auth struct {
	Username   string
	Secret     string
	Mechanisms []string // allowed, in order of preference; empty: PLAIN then LOGIN
}

// Timeouts are the per-stage SMTP timeouts of a connection strategy.
type Timeouts struct {
	Connect, Greeting, EHLO, MailFrom, RcptTo, Data time.Duration
}

// Connection says how to connect.
type Connection struct {
	EHLOHostname  string
	SourceIPs     []netip.Addr
	EHLOHostnames map[netip.Addr]string // EHLO name per source IP, over EHLOHostname
	Timeout       Timeouts
	NoChunking    bool // never BDAT (RFC 3030), even to servers that offer CHUNKING
}

// Strategy holds the compiled selectors.
type Strategy struct {
	Schedule   *expression.Selector
	Route      *expression.Selector
	Connection *expression.Selector
	TLS        *expression.Selector
}

// MaildirPath is where a local route's Maildir tree is.
func (c *Config) MaildirPath(r Route) string {
	if filepath.IsAbs(r.Maildir) {
		return r.Maildir
	}
	return filepath.Join(c.Server.DataDir, r.Maildir)
}
