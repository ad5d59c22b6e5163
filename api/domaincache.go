package api

import (
	"context"
	"sync"
	"time"

	"github.com/mailgate/mailgate/queue"
)

// domainCache remembers for KeyCacheTTL the sender domains a project may
// send from (senderCheck: verified, or pending in development, with the
// warning the send carries), so that a send does not read the domains
// table on every request. Only "may send" is remembered, so a domain
// registered or verified is usable at once. A change of a domain (its
// status above all) made through any replica evicts the name for every
// project everywhere at once through the Revocations broadcast
// (domainChanged, and the worker's re-check): verifying a name in one project changes what the others
// may do with it. A lookup that began before an eviction is not cached.
// The TTL bounds how long a change made behind mailgate's back takes.
type domainCache struct {
	ttl time.Duration
	now func() time.Time

	mu sync.Mutex
	// epoch counts evictions; a lookup that began before one is not
	// cached, since it may have read what the eviction was for.
	epoch uint64
	// domains: name → project id → entry.
	domains map[string]map[string]domainEntry
	size    int
}

// domainEntry is one cached "may send".
type domainEntry struct {
	expires time.Time
	// warning is what a send from the domain is told ("" for none).
	warning string
}

// maxDomainEntries bounds the cache; past it the cache starts over.
const maxDomainEntries = 10000

func newDomainCache(ttl time.Duration, now func() time.Time) *domainCache {
	return &domainCache{ttl: ttl, now: now, domains: map[string]map[string]domainEntry{}}
}

// sendable reports whether the pair was found sendable within the TTL,
// and the warning its sends carry; epoch is for put after a lookup on a
// miss.
func (dc *domainCache) sendable(projectID, domain string) (warning string, ok bool, epoch uint64) {
	dc.mu.Lock()
	defer dc.mu.Unlock()
	e, ok := dc.domains[domain][projectID]
	if !ok || !dc.now().Before(e.expires) {
		return "", false, dc.epoch
	}
	return e.warning, true, dc.epoch
}

// put caches a "may send" found by a lookup that began at epoch, unless an
// eviction happened since (the lookup may have read what it was for).
func (dc *domainCache) put(projectID, domain, warning string, epoch uint64) {
	dc.mu.Lock()
	defer dc.mu.Unlock()
	if dc.epoch != epoch {
		return
	}
	if dc.size >= maxDomainEntries {
		clear(dc.domains)
		dc.size = 0
	}
	byProject := dc.domains[domain]
	if byProject == nil {
		byProject = map[string]domainEntry{}
		dc.domains[domain] = byProject
	}
	if _, ok := byProject[projectID]; !ok {
		dc.size++
	}
	byProject[projectID] = domainEntry{expires: dc.now().Add(dc.ttl), warning: warning}
}

// clear forgets everything.
func (dc *domainCache) clear() {
	dc.mu.Lock()
	defer dc.mu.Unlock()
	dc.epoch++
	clear(dc.domains)
	dc.size = 0
}

// evict forgets the name for every project.
func (dc *domainCache) evict(domain string) {
	dc.mu.Lock()
	defer dc.mu.Unlock()
	dc.epoch++
	dc.size -= len(dc.domains[domain])
	delete(dc.domains, domain)
}

// domainChanged evicts a domain here (for every project: verifying a name
// in one project changes what the others may do with it) and tells the
// other replicas and the workers (queue.DomainChange), which drop what they
// cached of it at once: call it after the domain was registered or
// deleted, or its DKIM keys or status changed. A failed broadcast is
// logged; the others then catch up within their cache TTL.
func (s *Server) domainChanged(ctx context.Context, projectID, domain string) {
	if s.deps.Revocations == nil {
		return
	}
	if s.domains != nil {
		s.domains.evict(domain)
	}
	if err := s.deps.Revocations.Publish(ctx, queue.DomainChange(projectID, domain)); err != nil {
		s.deps.Log.Warn("broadcast domain change; other replicas and workers see it within their cache TTL",
			"domain", domain, "err", err)
	}
}

// revoked applies one broadcast: a changed domain or a revoked key id.
func (s *Server) revoked(payload string) {
	if _, domain, ok := queue.ParseDomainChange(payload); ok {
		if s.domains != nil {
			s.domains.evict(domain)
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
