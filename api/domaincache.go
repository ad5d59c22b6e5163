package api

import (
	"context"
	"sync"
	"time"

	"github.com/mailgate/mailgate/queue"
)

// domainCache remembers for KeyCacheTTL which sender domains a project has
// registered, so that a send does not read the domains table on every
// request. Only "registered" is remembered, so a domain added is usable at
// once. A domain changed through any replica is evicted everywhere at once
// through the Revocations broadcast (domainChanged); the TTL bounds how
// long a change made behind mailgate's back takes.
type domainCache struct {
	ttl time.Duration
	now func() time.Time

	mu      sync.Mutex
	domains map[string]time.Time // "project\x00domain" → expiry
}

func newDomainCache(ttl time.Duration, now func() time.Time) *domainCache {
	return &domainCache{ttl: ttl, now: now, domains: map[string]time.Time{}}
}

func domainCacheKey(projectID, domain string) string { return projectID + "\x00" + domain }

// registered reports whether the pair was found registered within the TTL.
func (dc *domainCache) registered(projectID, domain string) bool {
	dc.mu.Lock()
	defer dc.mu.Unlock()
	expires, ok := dc.domains[domainCacheKey(projectID, domain)]
	return ok && dc.now().Before(expires)
}

func (dc *domainCache) put(projectID, domain string) {
	dc.mu.Lock()
	defer dc.mu.Unlock()
	if len(dc.domains) > 10000 {
		clear(dc.domains)
	}
	dc.domains[domainCacheKey(projectID, domain)] = dc.now().Add(dc.ttl)
}

func (dc *domainCache) evict(projectID, domain string) {
	dc.mu.Lock()
	defer dc.mu.Unlock()
	delete(dc.domains, domainCacheKey(projectID, domain))
}

func (dc *domainCache) clear() {
	dc.mu.Lock()
	defer dc.mu.Unlock()
	clear(dc.domains)
}

// domainChanged evicts a domain here and tells the other replicas and
// the workers (queue.DomainChange), which drop what they cached of it at
// once: call it after the domain was registered or deleted, or its DKIM
// keys or status changed. A failed broadcast is logged; the others then
// catch up within their cache TTL.
func (s *Server) domainChanged(ctx context.Context, projectID, domain string) {
	if s.deps.Revocations == nil {
		return
	}
	if s.domains != nil {
		s.domains.evict(projectID, domain)
	}
	if err := s.deps.Revocations.Publish(ctx, queue.DomainChange(projectID, domain)); err != nil {
		s.deps.Log.Warn("broadcast domain change; other replicas and workers see it within their cache TTL",
			"domain", domain, "err", err)
	}
}

// revoked applies one broadcast: a changed domain or a revoked key id.
func (s *Server) revoked(payload string) {
	if projectID, domain, ok := queue.ParseDomainChange(payload); ok {
		if s.domains != nil {
			s.domains.evict(projectID, domain)
		}
		return
	}
	s.keys.evict(payload)
}

// forget empties both caches: the broadcast subscription was (re)made,
// and what was published before it was lost.
func (s *Server) forget() {
	s.keys.clear()
	if s.domains != nil {
		s.domains.clear()
	}
}
