package admin

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"time"

	"github.com/mtad/mtad/messages"
)

// TopDomains bounds Summary.ByDomain.
const TopDomains = 50

// Summary answers GET /api/v1/summary. ByQueue and ByDomain count pending
// recipients; ByStatus counts every recipient in the journal.
type Summary struct {
	Messages         int            `json:"messages"`
	PendingMessages  int            `json:"pending_messages"`
	PendingRcpts     int            `json:"pending_recipients"`
	OldestPendingAge int64          `json:"oldest_pending_age_seconds"`
	OldestPendingID  string         `json:"oldest_pending_id,omitempty"`
	ByQueue          map[string]int `json:"by_queue"`
	ByStatus         map[string]int `json:"by_status"`
	ByDomain         []DomainCount  `json:"by_domain"`
	DomainsNotShown  int            `json:"domains_not_shown,omitempty"`
	// BySite counts the pending recipients of the domains in ByDomain by
	// the provider site their MX hosts belong to ([queue.site.X]);
	// domains of no site are left out. Absent without sites.
	BySite map[string]int `json:"by_site,omitempty"`
}

// SiteResolver is what a Control offers to count the summary by site.
type SiteResolver interface {
	// SiteOf names the site of domain's MX hosts, or "".
	SiteOf(ctx context.Context, domain string) string
}

// siteLookups bounds the MX lookups of one summary running at once, and
// siteBudget their time: a summary answers even when DNS is slow.
const (
	siteLookups = 8
	siteBudget  = 3 * time.Second
)

// addSites fills s.BySite from the domains of s.ByDomain.
func addSites(ctx context.Context, s *Summary, sr SiteResolver) {
	ctx, cancel := context.WithTimeout(ctx, siteBudget)
	defer cancel()
	sites := make([]string, len(s.ByDomain))
	var wg sync.WaitGroup
	sem := make(chan struct{}, siteLookups)
	for i, d := range s.ByDomain {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			sites[i] = sr.SiteOf(ctx, d.Domain)
		}()
	}
	wg.Wait()
	for i, site := range sites {
		if site == "" {
			continue
		}
		if s.BySite == nil {
			s.BySite = map[string]int{}
		}
		s.BySite[site] += s.ByDomain[i].Count
	}
}

// DomainCount is the number of pending recipients in one domain.
type DomainCount struct {
	Domain string `json:"domain"`
	Count  int    `json:"count"`
}

// counter accumulates a Summary over a Load.
type counter struct {
	s       Summary
	domains map[string]int
	oldest  *messages.Envelope
}

func (c *counter) add(env *messages.Envelope) {
	if c.s.ByQueue == nil {
		c.s.ByQueue = map[string]int{}
		c.s.ByStatus = map[string]int{}
		c.domains = map[string]int{}
	}
	c.s.Messages++
	for _, r := range env.Rcpts {
		c.s.ByStatus[r.Status.String()]++
		if r.Status != messages.StatusPending {
			continue
		}
		c.s.PendingRcpts++
		c.s.ByQueue[r.Queue]++
		c.domains[messages.Domain(r.Addr)]++
	}
	if env.Pending() > 0 {
		c.s.PendingMessages++
		if c.oldest == nil || env.Arrival.Before(c.oldest.Arrival) {
			c.oldest = env
		}
	}
}

func (c *counter) summary(now time.Time) Summary {
	s := c.s
	if s.ByQueue == nil {
		s.ByQueue, s.ByStatus = map[string]int{}, map[string]int{}
	}
	if c.oldest != nil {
		s.OldestPendingAge = int64(now.Sub(c.oldest.Arrival) / time.Second)
		s.OldestPendingID = c.oldest.ID.String()
	}
	s.ByDomain = make([]DomainCount, 0, len(c.domains))
	for d, n := range c.domains {
		s.ByDomain = append(s.ByDomain, DomainCount{Domain: d, Count: n})
	}
	slices.SortFunc(s.ByDomain, func(a, b DomainCount) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.Domain, b.Domain))
	})
	if len(s.ByDomain) > TopDomains {
		s.DomainsNotShown = len(s.ByDomain) - TopDomains
		s.ByDomain = s.ByDomain[:TopDomains]
	}
	return s
}
