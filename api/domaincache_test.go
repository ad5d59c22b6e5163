package api

import (
	"testing"
	"time"
)

// TestDomainCache: an entry is sendable with its warning until the TTL;
// evicting a name drops it for every project; clear drops everything.
func TestDomainCache(t *testing.T) {
	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	dc := newDomainCache(5*time.Second, func() time.Time { return now })
	dc.put("p1", "brand.example", "not verified")
	dc.put("p2", "brand.example", "")
	dc.put("p1", "other.example", "")
	if w, ok := dc.sendable("p1", "brand.example"); !ok || w != "not verified" {
		t.Errorf("sendable(p1, brand) = %q, %v", w, ok)
	}
	if _, ok := dc.sendable("p3", "brand.example"); ok {
		t.Error("a project that never looked the name up is sendable")
	}
	dc.evict("brand.example")
	for _, p := range []string{"p1", "p2"} {
		if _, ok := dc.sendable(p, "brand.example"); ok {
			t.Errorf("%s still sendable after the name was evicted", p)
		}
	}
	if _, ok := dc.sendable("p1", "other.example"); !ok {
		t.Error("evicting one name dropped another")
	}
	now = now.Add(5 * time.Second)
	if _, ok := dc.sendable("p1", "other.example"); ok {
		t.Error("sendable past the TTL")
	}
	dc.put("p1", "other.example", "")
	dc.clear()
	if _, ok := dc.sendable("p1", "other.example"); ok || dc.size != 0 {
		t.Errorf("clear left an entry (size %d)", dc.size)
	}
}
