package queue

import "testing"

// TestDomainChangedPayload: a DomainChanged payload parses back to its
// project and domain; a key id is not one.
func TestDomainChangedPayload(t *testing.T) {
	p, d, ok := ParseDomainChanged(DomainChanged("proj-1", "shop.example"))
	if !ok || p != "proj-1" || d != "shop.example" {
		t.Errorf("ParseDomainChanged = %q, %q, %v", p, d, ok)
	}
	if _, _, ok := ParseDomainChanged("a1b2c3d4"); ok {
		t.Error("a key id parsed as a domain change")
	}
}
