package mtasts

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

const (
	defaultTimeout   = 10 * time.Second
	defaultMaxBody   = 64 << 10 // RFC 8461 section 3.3: at most 64 KB
	defaultPort      = 443
	defaultCacheSize = 10000
	maxHeaderBytes   = 32 << 10
	userAgent        = "mtad"
)

// TXTLookuper looks up TXT records: one string per record, its strings
// concatenated. A name that does not exist is a permanent *resolver.Error
// or a *net.DNSError with IsNotFound; no records may also be an empty
// answer. Any other error is temporary.
type TXTLookuper interface {
	LookupTXT(ctx context.Context, name string) ([]string, error)
}

// IPLookuper looks up the addresses of a host, in the order to try them.
// Errors are classed as for TXTLookuper.
type IPLookuper interface {
	LookupIP(ctx context.Context, host string) ([]netip.Addr, error)
}

// Fetcher gets policies and caches them. Zero values take defaults; TXT
// is required. Fields must not change after the first Get.
type Fetcher struct {
	TXT TXTLookuper
	// IP resolves mta-sts.<domain>; the policy is fetched from the
	// addresses it returns, still with SNI and certificate verification
	// for mta-sts.<domain>. Nil: the system resolver.
	IP        IPLookuper
	RootCAs   *x509.CertPool   // nil: the system roots
	Timeout   time.Duration    // the TXT lookup, and the whole fetch; default 10s
	MaxBody   int64            // bytes; default 64 KiB
	Port      int              // of the policy host; default 443
	CacheSize int              // policies kept; default 10,000
	Now       func() time.Time // default time.Now

	once   sync.Once
	client *http.Client

	mu    sync.Mutex
	cache map[string]*Policy // by domain; guarded by mu
}

// Get returns the policy of a recipient domain (RFC 8461 section 5); see
// the package documentation for what its results mean.
func (f *Fetcher) Get(ctx context.Context, domain string) (*Policy, error) {
	f.once.Do(f.init)
	name, ok := normalize(domain)
	if !ok {
		return nil, nil // an address literal or no domain name: no MTA-STS
	}
	cached := f.cached(name)
	id, err := f.lookupID(ctx, name)
	switch {
	case err != nil || id == "": // section 5.1: the cache outlives DNS
		if cached != nil {
			return cached, nil
		}
		return nil, err
	case cached != nil && cached.ID == id:
		return cached, nil
	}
	p, err := f.fetch(ctx, name, id)
	if err != nil {
		if cached != nil { // section 5.1: keep the cached policy
			return cached, nil
		}
		return nil, err
	}
	f.store(name, p)
	return p, nil
}

func (f *Fetcher) init() {
	transport := &http.Transport{
		Proxy:                  nil, // policy hosts are reached directly
		DialContext:            f.dial,
		TLSClientConfig:        &tls.Config{RootCAs: f.RootCAs, MinVersion: tls.VersionTLS12},
		DisableKeepAlives:      true,
		DisableCompression:     true,
		MaxResponseHeaderBytes: maxHeaderBytes,
	}
	f.client = &http.Client{
		Transport: transport,
		// Section 3.3: redirects must not be followed; the 3xx is an answer.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	f.cache = make(map[string]*Policy)
}

// lookupID returns the id of the domain's MTA-STS TXT record, or "" when
// it has no usable record (section 3.1). A failed lookup is a temporary
// *Error.
func (f *Fetcher) lookupID(ctx context.Context, domain string) (string, error) {
	if f.TXT == nil {
		return "", temporary(ReasonFetchError, errors.New("no txt lookuper configured"))
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout())
	defer cancel()
	name := "_mta-sts." + domain
	records, err := f.TXT.LookupTXT(ctx, name)
	switch {
	case err != nil && notFound(err):
		return "", nil
	case err != nil:
		return "", temporary(ReasonFetchError, fmt.Errorf("txt record: %w", err))
	}
	record, ok := stsRecord(records)
	if !ok {
		return "", nil
	}
	id, err := ParseTXT(record)
	if err != nil {
		return "", nil // section 3.1: an invalid record is no record
	}
	return id, nil
}

// fetch gets the policy of domain over HTTPS (section 3.3) and gives it
// id. Every error is an *Error.
func (f *Fetcher) fetch(ctx context.Context, domain, id string) (*Policy, error) {
	ctx, cancel := context.WithTimeout(ctx, f.timeout())
	defer cancel()
	url := "https://mta-sts." + domain + "/.well-known/mta-sts.txt"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, permanent(ReasonFetchError, err)
	}
	req.Header.Set("User-Agent", userAgent)
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, classify(err)
	}
	defer resp.Body.Close()
	body, err := f.read(resp, url)
	if err != nil {
		return nil, err
	}
	p, err := Parse(body)
	if err != nil {
		return nil, permanent(ReasonInvalid, fmt.Errorf("%s: %w", url, err))
	}
	p.ID, p.Fetched = id, f.now()
	return p, nil
}

// read checks the status and type of a response and reads its body, at
// most MaxBody bytes.
func (f *Fetcher) read(resp *http.Response, url string) ([]byte, error) {
	if resp.StatusCode != http.StatusOK {
		err := fmt.Errorf("%w: %s from %s", ErrStatus, resp.Status, url)
		if retryable(resp.StatusCode) {
			return nil, temporary(ReasonFetchError, err)
		}
		return nil, permanent(ReasonFetchError, err)
	}
	ct := resp.Header.Get("Content-Type")
	if media, _, err := mime.ParseMediaType(ct); err != nil || media != "text/plain" {
		return nil, permanent(ReasonInvalid, fmt.Errorf("%w: %q from %s", ErrContentType, truncate(ct), url))
	}
	limit := f.maxBody()
	tooLarge := permanent(ReasonInvalid, fmt.Errorf("%w: more than %d bytes from %s", ErrTooLarge, limit, url))
	if resp.ContentLength > limit {
		return nil, tooLarge
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	switch {
	case err != nil:
		return nil, classify(fmt.Errorf("read %s: %w", url, err))
	case int64(len(body)) > limit:
		return nil, tooLarge
	}
	return body, nil
}

// retryable reports a status that says "later": 408, 429 and 5xx.
func retryable(code int) bool {
	return code >= 500 || code == http.StatusRequestTimeout || code == http.StatusTooManyRequests
}

// dial connects to the policy host named in addr, at the addresses IP
// gives for it, on f's port, trying each in turn.
func (f *Fetcher) dial(ctx context.Context, _, addr string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	port := f.port()
	if port <= 0 || port > 65535 {
		return nil, fmt.Errorf("policy host port %d out of range", port)
	}
	var d net.Dialer
	if f.IP == nil {
		return d.DialContext(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	}
	addrs, err := f.IP.LookupIP(ctx, host)
	if err != nil {
		return nil, err
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("lookup %s: no addresses", host)
	}
	var errs []error
	for _, a := range addrs {
		conn, err := d.DialContext(ctx, "tcp", netip.AddrPortFrom(a, uint16(port)).String())
		if err == nil {
			return conn, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}

// normalize returns domain lower case, in ASCII, without a trailing dot,
// or false when it is not a domain name that can have a policy.
func normalize(domain string) (string, bool) {
	name := strings.TrimSuffix(domain, ".")
	if !isASCII(name) {
		if !utf8.ValidString(name) {
			return "", false // idna would turn it into U+FFFD
		}
		ascii, err := idna.Lookup.ToASCII(name)
		if err != nil {
			return "", false
		}
		name = ascii
	}
	name = strings.ToLower(name)
	if _, err := netip.ParseAddr(name); err == nil {
		return "", false
	}
	return name, validName(name)
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

func (f *Fetcher) timeout() time.Duration { return cmp.Or(f.Timeout, defaultTimeout) }
func (f *Fetcher) maxBody() int64         { return cmp.Or(f.MaxBody, defaultMaxBody) }
func (f *Fetcher) port() int              { return cmp.Or(f.Port, defaultPort) }
func (f *Fetcher) cacheSize() int         { return cmp.Or(f.CacheSize, defaultCacheSize) }

func (f *Fetcher) now() time.Time {
	if f.Now != nil {
		return f.Now()
	}
	return time.Now()
}
