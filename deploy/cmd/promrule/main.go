// Command promrule writes the Kubernetes PrometheusRule of deploy/k8s/base
// from deploy/prometheus/alerts.yml. Run it in deploy/ after changing the
// rules:
//
//	go run ./cmd/promrule
package main

import (
	"fmt"
	"os"

	"github.com/mailgate/mailgate/deploy"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "promrule:", err)
		os.Exit(1)
	}
}

func run() error {
	alerts, err := os.ReadFile(deploy.AlertsPath)
	if err != nil {
		return err
	}
	rule, err := deploy.PrometheusRule(alerts)
	if err != nil {
		return err
	}
	return os.WriteFile(deploy.PrometheusRulePath, rule, 0o644)
}
