package api

import (
	"context"
	"strings"
	"sync"
	"time"
)

// domainCache remembers for KeyCacheTTL which sender domains a project has
// registered, so that a send does not read the domains table on every
// request. Only "registered" is remembered, so a domain added is usable at
// once. A domain deleted through any replica is evicted everywhere at once
// through the Revocations broadcast (domainRevocation); the TTL bounds how
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

// domainRevocationPrefix marks a deleted domain on the revocations
// channel; key ids (letters and digits) never start with it.
const domainRevocationPrefix = "domain\x00"

// domainRevocation is the broadcast payload for a deleted domain.
func domainRevocation(projectID, domain string) string {
	return domainRevocationPrefix + domainCacheKey(projectID, domain)
}

// parseDomainRevocation reads a domainRevocation payload.
func parseDomainRevocation(payload string) (projectID, domain string, ok bool) {
	rest, ok := strings.CutPrefix(payload, domainRevocationPrefix)
	if !ok {
		return "", "", false
	}
	return strings.Cut(rest, "\x00")
}

// domainDeleted evicts a domain here and tells the other replicas.
func (s *Server) domainDeleted(ctx context.Context, projectID, domain string) {
	if s.domains == nil {
		return
	}
	s.domains.evict(projectID, domain)
	if err := s.deps.Revocations.Publish(ctx, domainRevocation(projectID, domain)); err != nil {
		s.deps.Log.Warn("broadcast domain deletion; other replicas drop it within the cache TTL", "err", err)
	}
}

// revoked applies one broadcast: a deleted domain or a revoked key id.
func (s *Server) revoked(payload string) {
	if projectID, domain, ok := parseDomainRevocation(payload); ok {
		if s.domains != nil {
			s.domains.evict(projectID, domain)
		}
		return
	}
	s.keys.evict(payload)
}
