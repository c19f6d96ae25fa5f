package mtasts

// cached returns the unexpired policy cached for domain, or nil. An
// expired one is dropped.
func (f *Fetcher) cached(domain string) *Policy {
	now := f.now()
	f.mu.Lock()
	defer f.mu.Unlock()
	p := f.cache[domain]
	if p != nil && !now.Before(p.Expires()) {
		delete(f.cache, domain)
		return nil
	}
	return p
}

// store caches p for domain, making room when the cache is full. A policy
// that expires as it is fetched (max_age 0) is not kept.
func (f *Fetcher) store(domain string, p *Policy) {
	if !p.Fetched.Before(p.Expires()) {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.cache[domain]; !ok && len(f.cache) >= f.cacheSize() {
		f.evict()
	}
	f.cache[domain] = p
}

// evict drops the policy that expires first: an expired one if there is
// one, else the one closest to its end. Called with f.mu held.
func (f *Fetcher) evict() {
	var victim string
	var first *Policy
	for domain, p := range f.cache {
		if first == nil || p.Expires().Before(first.Expires()) {
			victim, first = domain, p
		}
	}
	delete(f.cache, victim)
}
