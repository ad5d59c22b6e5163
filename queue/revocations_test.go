package queue

import "testing"

// TestDomainChangePayload: a DomainChange payload parses back to its
// project and domain; a key id is not one.
func TestDomainChangePayload(t *testing.T) {
	p, d, ok := ParseDomainChange(DomainChange("proj-1", "shop.example"))
	if !ok || p != "proj-1" || d != "shop.example" {
		t.Errorf("ParseDomainChange = %q, %q, %v", p, d, ok)
	}
	if _, _, ok := ParseDomainChange("a1b2c3d4"); ok {
		t.Error("a key id parsed as a domain change")
	}
}
