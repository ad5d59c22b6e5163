package mailgate

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/mailgate/mailgate/store"
)

// TestDocsSelfContained: no file of the repository refers to documents a
// clone does not have; the architecture is docs/architecture.md.
func TestDocsSelfContained(t *testing.T) {
	out, err := exec.Command("git", "ls-files").Output()
	if err != nil {
		t.Skipf("git ls-files: %v", err)
	}
	// Spelled in pieces so that this file does not match itself.
	outside := []string{"DESIGN" + ".md", "STYLE" + ".md", "../" + "shared"}
	for _, name := range strings.Fields(string(out)) {
		if strings.HasPrefix(name, "bounce/testdata/") || strings.HasSuffix(name, ".eml") ||
			name == "package-lock.json" || name == "go.sum" {
			continue
		}
		b, err := os.ReadFile(name)
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted in the working tree
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, ref := range outside {
			if strings.Contains(string(b), ref) {
				t.Errorf("%s refers to %s", name, ref)
			}
		}
	}
}

// TestArchitectureNamesStatusesAndEvents: docs/architecture.md lists every
// recipient and sender domain status and every event type the store writes.
func TestArchitectureNamesStatusesAndEvents(t *testing.T) {
	b, err := os.ReadFile("docs/architecture.md")
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `([a-z_.]+)` \\|").FindAllStringSubmatch(string(b), -1) {
		listed[m[1]] = true
	}
	for _, name := range []string{
		store.StatusQueued, store.StatusScheduled, store.StatusSending, store.StatusDeferred,
		store.StatusSent, store.StatusFailed, store.StatusBounced, store.StatusComplained,
		store.StatusSuppressed, store.StatusCancelled,
		store.EventQueued, store.EventSent, store.EventDeferred, store.EventFailed,
		store.EventSuppressed, store.EventCancelled, store.EventBounced, store.EventComplained,
		store.EventReplied, store.EventAutoReplied,
		store.DomainPending, store.DomainVerified, store.DomainFailed,
		store.EventDomainVerified, store.EventDomainVerificationFailed,
	} {
		if !listed[name] {
			t.Errorf("docs/architecture.md has no table row for %q", name)
		}
	}
}
