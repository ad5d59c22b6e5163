package api

import (
	"testing"
	"time"

	"github.com/mailgate/mailgate/store"
)

// TestDomainCache: an entry is sendable with its warning until the TTL;
// evicting a name drops it for every project; clear drops everything.
func TestDomainCache(t *testing.T) {
	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	dc := newDomainCache(5*time.Second, func() time.Time { return now })
	dc.put("p1", "brand.example", "not verified", 0)
	dc.put("p2", "brand.example", "", dc.epoch)
	dc.put("p1", "other.example", "", dc.epoch)
	if w, ok, _ := dc.sendable("p1", "brand.example"); !ok || w != "not verified" {
		t.Errorf("sendable(p1, brand) = %q, %v", w, ok)
	}
	if _, ok, _ := dc.sendable("p3", "brand.example"); ok {
		t.Error("a project that never looked the name up is sendable")
	}
	dc.evict("brand.example")
	for _, p := range []string{"p1", "p2"} {
		if _, ok, _ := dc.sendable(p, "brand.example"); ok {
			t.Errorf("%s still sendable after the name was evicted", p)
		}
	}
	if _, ok, _ := dc.sendable("p1", "other.example"); !ok {
		t.Error("evicting one name dropped another")
	}
	now = now.Add(5 * time.Second)
	if _, ok, _ := dc.sendable("p1", "other.example"); ok {
		t.Error("sendable past the TTL")
	}
	dc.put("p1", "other.example", "", dc.epoch)
	dc.clear()
	if _, ok, _ := dc.sendable("p1", "other.example"); ok || dc.size != 0 {
		t.Errorf("clear left an entry (size %d)", dc.size)
	}
}

// TestCachesSkipLookupsOverlappingEviction: a lookup that missed the
// cache, then read the store while an eviction happened (a revocation, a
// domain verified in another project), is not cached: the next request
// reads the store again. A lookup after the eviction is cached.
func TestCachesSkipLookupsOverlappingEviction(t *testing.T) {
	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }

	dc := newDomainCache(5*time.Second, clock)
	_, ok, epoch := dc.sendable("p1", "brand.example") // the lookup begins
	if ok {
		t.Fatal("an empty cache answered")
	}
	dc.evict("brand.example") // the name changed while the store was read
	dc.put("p1", "brand.example", "", epoch)
	if _, ok, _ := dc.sendable("p1", "brand.example"); ok {
		t.Error("a domain lookup that overlapped an eviction was cached")
	}
	_, _, epoch = dc.sendable("p1", "brand.example")
	dc.clear() // a resubscription overlaps it
	dc.put("p1", "brand.example", "", epoch)
	if _, ok, _ := dc.sendable("p1", "brand.example"); ok {
		t.Error("a domain lookup that overlapped a clear was cached")
	}
	_, _, epoch = dc.sendable("p1", "brand.example")
	dc.put("p1", "brand.example", "", epoch)
	if _, ok, _ := dc.sendable("p1", "brand.example"); !ok {
		t.Error("a lookup with no eviction during it was not cached")
	}

	kc := newKeyCache(5*time.Second, clock)
	key := store.APIKey{ID: "k1"}
	_, ok, epoch = kc.get("k1")
	if ok {
		t.Fatal("an empty key cache answered")
	}
	kc.evict("k1") // revoked while the lookup read it
	kc.put(key, epoch)
	if _, ok, _ := kc.get("k1"); ok {
		t.Error("a key lookup that overlapped its revocation was cached")
	}
	_, _, epoch = kc.get("k1")
	kc.clear()
	kc.put(key, epoch)
	if _, ok, _ := kc.get("k1"); ok {
		t.Error("a key lookup that overlapped a clear was cached")
	}
	_, _, epoch = kc.get("k1")
	kc.put(key, epoch)
	if _, ok, _ := kc.get("k1"); !ok {
		t.Error("a key lookup with no eviction during it was not cached")
	}
}
