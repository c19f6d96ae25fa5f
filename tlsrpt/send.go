package tlsrpt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/mail"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// Defaults of a Sender.
const (
	DefaultTimeout = 30 * time.Second
	DefaultWorkers = 8
)

// maxResponse bounds what is read of an HTTPS response before the
// connection is given back.
const maxResponse = 64 << 10

// TXTResolver looks up TXT records; net.Resolver is one. An error that
// wraps ErrNoRecord, or a *net.DNSError with IsNotFound, means there are
// none.
type TXTResolver interface {
	LookupTXT(ctx context.Context, name string) ([]string, error)
}

var _ TXTResolver = (*net.Resolver)(nil)

// Sender delivers reports to the rua of each policy domain's TLSRPT
// record (RFC 8460 section 5). TXT, From and Org are required, Submit is
// for mailto: rua; the HTTP client defaults to http.DefaultClient and Now
// to time.Now.
type Sender struct {
	TXT TXTResolver
	// Submit queues msg from the envelope sender from to rcpts, as the
	// daemon queues any message (journaled, DKIM-signed). It may be called
	// from several goroutines at once.
	Submit func(from string, rcpts []string, msg []byte) error
	From   string // the report address, the From field and contact-info
	Org    string // the submitter: a host name
	HTTP   *http.Client
	Now    func() time.Time

	Timeout time.Duration // per TXT lookup and per HTTPS POST; 0 means DefaultTimeout
	Workers int           // reports sent at once; 0 means DefaultWorkers
}

// Send delivers each report, setting its submitter first when it has none:
// mailto: addresses get one message through Submit, each https: URI a POST
// of the gzipped JSON. Every failure is collected, with the domain and
// URI it concerns, and returned joined; a domain without a TLSRPT record is
// no failure. Send returns when every report has been tried or ctx is
// done.
func (s *Sender) Send(ctx context.Context, reports map[string]*Report) error {
	domains := make([]string, 0, len(reports))
	for d := range reports {
		domains = append(domains, d)
	}
	sort.Strings(domains)

	var mu sync.Mutex
	var errs []error
	sem := make(chan struct{}, bound(s.Workers, DefaultWorkers))
	var wg sync.WaitGroup
	for _, d := range domains {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := s.sendOne(ctx, reports[d]); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("tlsrpt: report for %s: %w", d, err))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// sendOne looks up the rua of rep's domain and delivers rep to each.
func (s *Sender) sendOne(ctx context.Context, rep *Report) error {
	if rep.OrganizationName == "" {
		if err := rep.SetSubmitter(s.Org, s.contact()); err != nil {
			return err
		}
	}
	rua, err := s.lookup(ctx, rep.Domain())
	if errors.Is(err, ErrNoRecord) || errors.Is(err, ErrMultipleRecords) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	var rcpts []string
	for _, u := range rua {
		p, _ := url.Parse(u) // ParseTXT has parsed it
		switch strings.ToLower(p.Scheme) {
		case "mailto":
			addrs, _ := mailtoAddrs(p)
			for _, a := range addrs {
				if !slices.Contains(rcpts, a) {
					rcpts = append(rcpts, a)
				}
			}
		case "https":
			if err := s.post(ctx, u, rep); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", u, err))
			}
		}
	}
	if len(rcpts) > 0 && s.Submit == nil {
		errs = append(errs, fmt.Errorf("mailto %s: Sender has no Submit", strings.Join(rcpts, ",")))
	} else if len(rcpts) > 0 {
		if err := s.mail(rep, rcpts); err != nil {
			errs = append(errs, fmt.Errorf("mailto %s: %w", strings.Join(rcpts, ","), err))
		}
	}
	return errors.Join(errs...)
}

// lookup returns the rua of domain's TLSRPT record.
func (s *Sender) lookup(ctx context.Context, domain string) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout())
	defer cancel()
	txt, err := s.TXT.LookupTXT(ctx, "_smtp._tls."+domain+".")
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
		return nil, ErrNoRecord
	}
	if err != nil {
		return nil, fmt.Errorf("looking up the TLSRPT record: %w", err)
	}
	return ParseTXT(txt)
}

// mail renders rep as a message and submits it from the report address.
func (s *Sender) mail(rep *Report, rcpts []string) error {
	msg, err := rep.Message(s.From, rcpts, s.now())
	if err != nil {
		return err
	}
	from, err := mail.ParseAddress(s.From)
	if err != nil {
		return err
	}
	return s.Submit(from.Address, rcpts, msg)
}

// post sends rep gzipped to an https rua (RFC 8460 section 5.2); any 2xx
// status is success.
func (s *Sender) post(ctx context.Context, uri string, rep *Report) error {
	body, err := rep.Gzip()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, uri, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/tlsrpt+gzip")
	client := s.HTTP
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponse))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("server answered %s", resp.Status)
	}
	return nil
}

// contact is the report address without a display name, for contact-info.
func (s *Sender) contact() string {
	if a, err := mail.ParseAddress(s.From); err == nil {
		return a.Address
	}
	return s.From
}

func (s *Sender) now() time.Time {
	if s.Now == nil {
		return time.Now()
	}
	return s.Now()
}

func (s *Sender) timeout() time.Duration {
	if s.Timeout <= 0 {
		return DefaultTimeout
	}
	return s.Timeout
}
