package config

// The raw structs mirror the TOML file; strings are parsed into typed values
// by validate so that each error can name its key.

type rawConfig struct {
	Server   rawServer   `toml:"server"`
	Session  rawSession  `toml:"session"`
	Resolver rawResolver `toml:"resolver"`
	Log      rawLog      `toml:"log"`
	TLS      rawTLS      `toml:"tls"`
	Report   rawReport   `toml:"report"`
	Queue    rawQueue    `toml:"queue"`
	Webhook  rawWebhooks `toml:"webhook"`
}

type rawWebhooks struct {
	Endpoint map[string]rawWebhook `toml:"endpoint"`
}

type rawWebhook struct {
	URL           string            `toml:"url"`
	Events        []string          `toml:"events"`
	Headers       map[string]string `toml:"headers"`
	BatchSize     int               `toml:"batch-size"`
	FlushInterval string            `toml:"flush-interval"`
	Timeout       string            `toml:"timeout"`
	MinBackoff    string            `toml:"min-backoff"`
	MaxBackoff    string            `toml:"max-backoff"`
}

type rawTLS struct {
	CAFile        string `toml:"ca-file"`
	MTASTSPort    *int   `toml:"mta-sts-port"`
	MTASTSTimeout string `toml:"mta-sts-timeout"`
}

type rawReport struct {
	TLS rawTLSReport `toml:"tls"`
}

type rawTLSReport struct {
	Enable       bool   `toml:"enable"`
	From         string `toml:"from"`
	Organization string `toml:"organization"`
	SendAt       string `toml:"send-at"`
}

type rawServer struct {
	Hostname        string                 `toml:"hostname"`
	DataDir         string                 `toml:"data-dir"`
	Listener        map[string]rawListener `toml:"listener"`
	ShutdownTimeout string                 `toml:"shutdown-timeout"`
	GCPercent       *int                   `toml:"gc-percent"`
	MemoryLimit     string                 `toml:"memory-limit"`
	TLS             rawServerTLS           `toml:"tls"`
	Management      rawManagement          `toml:"management"`
}

type rawManagement struct {
	Bind      string `toml:"bind"`
	Token     string `toml:"token"`
	TokenEnv  string `toml:"token-env"`
	TokenFile string `toml:"token-file"`
}

type rawServerTLS struct {
	Certificate string `toml:"certificate"`
	PrivateKey  string `toml:"private-key"`
}

type rawListener struct {
	Bind []string `toml:"bind"`
	TLS  string   `toml:"tls"`
}

type rawSession struct {
	TrustedNetworks []string     `toml:"trusted-networks"`
	LocalDomains    []string     `toml:"local-domains"`
	MaxMessageSize  string       `toml:"max-message-size"`
	MaxRecipients   *int         `toml:"max-recipients"`
	MaxConnections  *int         `toml:"max-connections"`
	Limits          rawAdmission `toml:"limits"`
	Auth            rawAuthUsers `toml:"auth"`
	Timeout         string       `toml:"timeout"`
}

type rawAuthUsers struct {
	Users     map[string]string `toml:"users"`
	FailDelay string            `toml:"fail-delay"`
	Lockout   struct {
		Failures *int   `toml:"failures"`
		Window   string `toml:"window"`
		Duration string `toml:"duration"`
	} `toml:"lockout"`
}

type rawAdmission struct {
	ConnectionsPerIP  *int     `toml:"connections-per-ip"`
	MessagesPerIP     string   `toml:"messages-per-ip"`
	MessagesPerSender string   `toml:"messages-per-sender"`
	MessagesPerUser   string   `toml:"messages-per-user"`
	Exempt            []string `toml:"exempt"`
}

type rawResolver struct {
	Nameservers []string `toml:"nameservers"`
	Timeout     string   `toml:"timeout"`
	Attempts    *int     `toml:"attempts"`
}

type rawLog struct {
	Level    string  `toml:"level"`
	Delivery *string `toml:"delivery"`
}

type rawQueue struct {
	Virtual    map[string]rawVirtual     `toml:"virtual"`
	Schedule   map[string]rawSchedule    `toml:"schedule"`
	Route      map[string]rawRoute       `toml:"route"`
	Connection map[string]rawConnection  `toml:"connection"`
	TLS        map[string]rawTLSStrategy `toml:"tls"`
	Quota      map[string]rawQuota       `toml:"quota"`
	Limit      map[string]rawLimit       `toml:"limit"`
	Site       map[string]rawSite        `toml:"site"`
	Shaping    map[string]rawShaping     `toml:"shaping"`
	Strategy   rawStrategy               `toml:"strategy"`
}

type rawLimit struct {
	Key                   []string `toml:"key"`
	Rate                  string   `toml:"rate"`
	ConnectionRate        string   `toml:"connection-rate"`
	Concurrency           *int     `toml:"concurrency"`
	MessagesPerConnection *int     `toml:"messages-per-connection"`
	Match                 string   `toml:"match"`
	Enable                *bool    `toml:"enable"`
}

type rawShaping struct {
	Code     *int     `toml:"code"`
	Enhanced string   `toml:"enhanced"`
	Text     string   `toml:"text"`
	Site     string   `toml:"site"`
	Action   string   `toml:"action"`
	Factor   *float64 `toml:"factor"`
	Duration string   `toml:"duration"`
}

type rawSite struct {
	MXSuffix []string `toml:"mx-suffix"`
}

type rawQuota struct {
	Key      string `toml:"key"`
	Messages *int64 `toml:"messages"`
	Size     string `toml:"size"`
	Match    string `toml:"match"`
}

type rawTLSStrategy struct {
	STARTTLS          string `toml:"starttls"`
	DANE              string `toml:"dane"`
	MTASTS            string `toml:"mta-sts"`
	AllowInvalidCerts bool   `toml:"allow-invalid-certs"`
	Timeout           string `toml:"timeout"`
}

type rawVirtual struct {
	Concurrency            *int   `toml:"concurrency"`
	DestinationConnections *int   `toml:"destination-connections"`
	MessagesPerConnection  *int   `toml:"messages-per-connection"`
	IdleTimeout            string `toml:"idle-timeout"`
}

type rawSchedule struct {
	Queue       string   `toml:"queue"`
	Retry       []string `toml:"retry"`
	Notify      []string `toml:"notify"`
	Expire      string   `toml:"expire"`
	MaxAttempts *int     `toml:"max-attempts"`
}

type rawRoute struct {
	Type          string   `toml:"type"`
	MaxMX         *int     `toml:"max-mx"`
	MaxMultihomed *int     `toml:"max-multihomed"`
	IPLookup      string   `toml:"ip-lookup"`
	Port          *int     `toml:"port"`
	Address       string   `toml:"address"`
	Protocol      string   `toml:"protocol"`
	ImplicitTLS   bool     `toml:"implicit-tls"`
	Auth          *rawAuth `toml:"auth"`
	Maildir       string   `toml:"maildir"`
	LMTP          string   `toml:"lmtp"`
}

type rawAuth struct {
	Username   string   `toml:"username"`
	Secret     string   `toml:"secret"`
	SecretEnv  string   `toml:"secret-env"`
	SecretFile string   `toml:"secret-file"`
	Mechanisms []string `toml:"mechanisms"`
}

type rawConnection struct {
	EHLOHostname  string            `toml:"ehlo-hostname"`
	SourceIPs     []string          `toml:"source-ips"`
	EHLOHostnames map[string]string `toml:"ehlo-hostnames"`
	Timeout       map[string]string `toml:"timeout"`
	Chunking      *bool             `toml:"chunking"`
}

type rawStrategy struct {
	Schedule   any `toml:"schedule"`
	Route      any `toml:"route"`
	Connection any `toml:"connection"`
	TLS        any `toml:"tls"`
}
