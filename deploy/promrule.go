package deploy

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Paths, relative to this directory, of the alert rules and of the
// PrometheusRule written from them.
const (
	AlertsPath         = "prometheus/alerts.yml"
	PrometheusRulePath = "k8s/base/prometheusrule.yaml"
)

// PrometheusRule returns the prometheus-operator PrometheusRule manifest
// holding the rule groups of alerts, the text of a Prometheus rule file
// (prometheus/alerts.yml). The groups are copied as text, indented under
// spec, so their comments and block scalars stay as written; the rule
// file's own leading comments are left out. The rule file stays the one
// source: promtool tests it, and the manifest is generated from it.
func PrometheusRule(alerts []byte) ([]byte, error) {
	var top map[string]any
	if err := yaml.Unmarshal(alerts, &top); err != nil {
		return nil, fmt.Errorf("rule file: %w", err)
	}
	if _, ok := top["groups"]; !ok || len(top) != 1 {
		return nil, errors.New("rule file: want a document holding groups and nothing else")
	}
	i := bytes.Index(append([]byte("\n"), alerts...), []byte("\ngroups:"))
	if i < 0 {
		return nil, errors.New("rule file: groups: must start a line")
	}
	var out strings.Builder
	out.WriteString(`# Generated from deploy/` + AlertsPath + ` by ` + "`go run ./cmd/promrule`" + `
# (run in deploy/): edit the rule file, not this one. deploy/k8s_test.go
# fails when the two differ.
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: mailgate
  labels:
    app.kubernetes.io/name: mailgate
spec:
`)
	for line := range strings.SplitSeq(strings.TrimRight(string(alerts[i:]), "\n"), "\n") {
		if strings.TrimSpace(line) != "" {
			out.WriteString("  " + line)
		}
		out.WriteString("\n")
	}
	return []byte(out.String()), nil
}
