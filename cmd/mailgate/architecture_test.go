package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestArchitectureMetricsTable: the "Metrics" table of docs/architecture.md
// and designMetrics, which the deploy tests check the dashboard against,
// list the same metrics.
func TestArchitectureMetricsTable(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "architecture.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	start := strings.Index(doc, "\n## Metrics\n")
	if start < 0 {
		t.Fatal("docs/architecture.md has no Metrics section")
	}
	section := doc[start+1:]
	if end := strings.Index(section[1:], "\n## "); end >= 0 {
		section = section[:end+1]
	}
	listed := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `(mailgate_[a-z_]+)`").FindAllStringSubmatch(section, -1) {
		listed[m[1]] = true
	}
	want := designMetrics()
	for name := range want {
		if !listed[name] {
			t.Errorf("docs/architecture.md's Metrics table lacks %s", name)
		}
	}
	for name := range listed {
		if _, ok := want[name]; !ok {
			t.Errorf("docs/architecture.md's Metrics table lists %s, which designMetrics does not", name)
		}
	}
}
