package deploy

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// RunbookPath is the operations guide, relative to this directory; its
// "Runbook" section has a heading per alert of AlertsPath.
const RunbookPath = "../docs/operations.md"

// RunbookBase is what every alert's runbook_url starts with: the
// operations guide in the repository, followed by the alert's anchor.
const RunbookBase = "https://github.com/mailgate/mailgate/blob/main/docs/operations.md#"

// headingAnchors returns the anchors GitHub gives the headings of a
// Markdown document: lower case, punctuation other than hyphens and
// underscores dropped, spaces made hyphens.
func headingAnchors(md string) map[string]bool {
	drop := regexp.MustCompile(`[^\p{L}\p{N} _-]`)
	out := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^#{1,6} +(.+?) *$`).FindAllStringSubmatch(md, -1) {
		out[strings.ReplaceAll(drop.ReplaceAllString(strings.ToLower(m[1]), ""), " ", "-")] = true
	}
	return out
}

// runbookEntries returns the level-3 headings of the guide's "Runbook"
// section.
func runbookEntries(md string) []string {
	_, section, ok := strings.Cut(md, "\n## Runbook\n")
	if !ok {
		return nil
	}
	if i := strings.Index(section, "\n## "); i >= 0 {
		section = section[:i]
	}
	var out []string
	for _, m := range regexp.MustCompile(`(?m)^### +(.+?) *$`).FindAllStringSubmatch(section, -1) {
		out = append(out, m[1])
	}
	return out
}

// TestAlertsLinkRunbook: every alert of prometheus/alerts.yml carries a
// runbook_url annotation pointing at a heading of docs/operations.md that
// exists, its own entry in the Runbook section, and that section has no
// entry for an alert the rule file lacks.
func TestAlertsLinkRunbook(t *testing.T) {
	raw, err := os.ReadFile(AlertsPath)
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(raw, &rules); err != nil {
		t.Fatal(err)
	}
	guide, err := os.ReadFile(RunbookPath)
	if err != nil {
		t.Fatal(err)
	}
	anchors := headingAnchors(string(guide))
	entries := runbookEntries(string(guide))
	var alerts []string
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			alerts = append(alerts, r.Alert)
			url := r.Annotations["runbook_url"]
			anchor, ok := strings.CutPrefix(url, RunbookBase)
			switch {
			case !ok:
				t.Errorf("%s: runbook_url %q does not start with %s", r.Alert, url, RunbookBase)
			case !anchors[anchor]:
				t.Errorf("%s: runbook_url %q names no heading of %s", r.Alert, url, RunbookPath)
			case anchor != strings.ToLower(r.Alert):
				t.Errorf("%s: runbook_url %q points at another entry than its own", r.Alert, url)
			}
			if !slices.Contains(entries, r.Alert) {
				t.Errorf("%s: no \"### %s\" entry in the Runbook section of %s", r.Alert, r.Alert, RunbookPath)
			}
		}
	}
	if len(alerts) == 0 {
		t.Fatalf("no alert read from %s", AlertsPath)
	}
	for _, e := range entries {
		if !slices.Contains(alerts, e) {
			t.Errorf("%s has a runbook entry %q for no alert of %s", RunbookPath, e, AlertsPath)
		}
	}
}

// TestHeadingAnchors: the anchors are GitHub's for the headings the guide
// uses.
func TestHeadingAnchors(t *testing.T) {
	got := headingAnchors("# Operating mailgate\n\n## PostgreSQL and Redis\n### MailgateNotSending\n## Master-key rotation\n")
	for _, want := range []string{"operating-mailgate", "postgresql-and-redis", "mailgatenotsending", "master-key-rotation"} {
		if !got[want] {
			t.Errorf("no anchor %q in %v", want, got)
		}
	}
	if len(got) != 4 {
		t.Errorf("anchors %v, want 4", got)
	}
}
