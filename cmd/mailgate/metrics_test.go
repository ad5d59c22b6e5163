package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/common/expfmt"

	"github.com/mailgate/mailgate/api"
	"github.com/mailgate/mailgate/inbound"
	"github.com/mailgate/mailgate/internal/testsvc"
	"github.com/mailgate/mailgate/queue"
	"github.com/mailgate/mailgate/ratelimit"
	"github.com/mailgate/mailgate/store"
	"github.com/mailgate/mailgate/worker"
)

// metricsRedisDB is this package's Redis database; the test only reads it.
const metricsRedisDB = 14

// designMetrics are the metrics the "Metrics" table of docs/architecture.md
// promises, with their types.
func designMetrics() map[string]string {
	return map[string]string{
		"mailgate_messages_accepted_total":           "counter",
		"mailgate_messages_rejected_total":           "counter",
		"mailgate_delivery_attempts_total":           "counter",
		"mailgate_relay_duration_seconds":            "histogram",
		"mailgate_dkim_sign_duration_seconds":        "histogram",
		"mailgate_ratelimit_delays_total":            "counter",
		"mailgate_bounces_total":                     "counter",
		"mailgate_complaints_total":                  "counter",
		"mailgate_replies_total":                     "counter",
		"mailgate_inbound_messages_total":            "counter",
		"mailgate_inbound_unmatched_total":           "counter",
		"mailgate_feedback_refused_total":            "counter",
		"mailgate_webhook_deliveries_total":          "counter",
		"mailgate_webhook_delivery_duration_seconds": "histogram",
		"mailgate_webhook_backlog":                   "gauge",
		"mailgate_webhook_endpoints_disabled":        "gauge",
		"mailgate_queue_size":                        "gauge",
		"mailgate_queue_oldest_seconds":              "gauge",
		"mailgate_suppressions":                      "gauge",
		"mailgate_domain_verified":                   "gauge",
	}
}

// metricRef finds metric names in PromQL and in annotation text.
var metricRef = regexp.MustCompile(`\b(?:mailgate|go|process|promhttp)_[a-z0-9_]+\b`)

// deployFile is a file under the repository's deploy/ directory.
func deployFile(t *testing.T, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "deploy", filepath.FromSlash(rel)))
	if err != nil {
		t.Fatalf("read deploy/%s: %v", rel, err)
	}
	return b
}

// exposition builds a registry holding every collector the binary
// registers (Go and process, API with its HTTP metrics, worker, delivery
// rate-limit policy, queue and suppression collectors), serves two API
// requests so that the HTTP metrics have samples, and returns the text
// exposition and the names of every described metric.
func exposition(t *testing.T) ([]byte, []string) {
	t.Helper()
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	st, err := store.Open(ctx, store.Config{URL: testsvc.SQLiteURL(t)})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if err := st.MigrateUp(ctx); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	rdb, err := queue.OpenRedis(testsvc.RedisURLDB(t, metricsRedisDB))
	if err != nil {
		t.Fatalf("open redis: %v", err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	if err := rdb.Ping(ctx).Err(); err != nil {
		testsvc.Missing(t, "redis", err)
	}
	srv, err := api.New(api.Config{}, api.Deps{Store: st, Registry: reg, Gatherer: reg})
	if err != nil {
		t.Fatalf("api.New: %v", err)
	}
	wm := worker.NewMetrics()
	wm.ObserveSign("ed25519", time.Millisecond)
	policy := ratelimit.NewPolicy(ratelimit.PolicyConfig{}, ratelimit.New(ratelimit.Config{}, rdb))
	im := inbound.NewMetrics()
	hooks := worker.NewWebhookMetrics()
	for _, register := range []func(prometheus.Registerer) error{wm.Register, policy.Register, im.Register, hooks.Register} {
		if err := register(reg); err != nil {
			t.Fatalf("register: %v", err)
		}
	}
	reg.MustRegister(worker.NewQueueCollector(rdb, []string{queue.QueueSend}), worker.NewSuppressionCollector(st),
		worker.NewDomainCollector(st))
	for _, path := range []string{"/healthz", "/v1/messages"} {
		srv.Handler().ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, path, nil))
	}
	return encode(t, reg), describedNames(reg)
}

// descName reads the name out of a prometheus.Desc's String form (Desc
// does not export it).
var descName = regexp.MustCompile(`fqName: "([^"]+)"`)

// describedNames are the names of every metric reg's collectors describe.
func describedNames(reg *prometheus.Registry) []string {
	ch := make(chan *prometheus.Desc)
	go func() {
		reg.Describe(ch)
		close(ch)
	}()
	var names []string
	for d := range ch {
		if m := descName.FindStringSubmatch(d.String()); m != nil {
			names = append(names, m[1])
		}
	}
	return names
}

// encode gathers reg in the text exposition format.
func encode(t *testing.T, reg *prometheus.Registry) []byte {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			t.Fatalf("encode %s: %v", mf.GetName(), err)
		}
	}
	return buf.Bytes()
}

// TestMetricsPassPromtool: `promtool check metrics` finds no problem in
// what /metrics exposes.
func TestMetricsPassPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		testsvc.Missing(t, "promtool (Debian package prometheus)", err)
	}
	text, _ := exposition(t)
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(text)
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

// TestDeployReferencesKnownMetrics: every metric name the alerts (queries
// and annotations) and the dashboard use is one docs/architecture.md lists
// or one the binary really exposes (HTTP, Go runtime, process, the extra
// gauges), and the dashboard shows every metric of that table.
func TestDeployReferencesKnownMetrics(t *testing.T) {
	known := knownMetricNames(t)
	dash := deployFile(t, "grafana/dashboards/mailgate.json")
	exprs := dashboardQueries(t, dash)
	files := map[string]string{
		"prometheus/alerts.yml":            string(deployFile(t, "prometheus/alerts.yml")),
		"grafana/dashboards/mailgate.json": strings.Join(exprs, "\n"),
	}
	for name, text := range files {
		t.Run(name, func(t *testing.T) {
			refs := metricRef.FindAllString(text, -1)
			if len(refs) == 0 {
				t.Fatal("no metric referenced")
			}
			for _, ref := range refs {
				if !known[ref] {
					t.Errorf("unknown metric %s", ref)
				}
			}
		})
	}
	dashText := strings.Join(exprs, "\n")
	for m := range designMetrics() {
		if !strings.Contains(dashText, m) {
			t.Errorf("the dashboard does not show %s", m)
		}
	}
}

// knownMetricNames are every metric the registry describes (vectors
// without samples included; a histogram with its _bucket, _sum and _count
// series) and every series name of the real exposition: what the code
// registers, not what the docs promise. Every metric of
// docs/architecture.md's table must be among them.
func knownMetricNames(t *testing.T) map[string]bool {
	t.Helper()
	known := map[string]bool{}
	text, described := exposition(t)
	for _, name := range described {
		known[name] = true
	}
	for m, typ := range designMetrics() {
		if known[m] && typ == "histogram" {
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				known[m+s] = true
			}
		}
	}
	for _, line := range strings.Split(string(text), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, _, _ := strings.Cut(line, "{")
		name, _, _ = strings.Cut(name, " ")
		known[name] = true
	}
	for _, want := range []string{"mailgate_http_requests_total", "mailgate_http_request_duration_seconds_bucket"} {
		if !known[want] {
			t.Fatalf("the API does not expose %s", want)
		}
	}
	for m := range designMetrics() {
		if !known[m] {
			t.Errorf("docs/architecture.md lists %s, which no collector registers", m)
		}
	}
	return known
}

// dashboardQueries decodes the dashboard (it must be valid JSON with a
// datasource input) and returns every panel expression and variable query.
func dashboardQueries(t *testing.T, b []byte) []string {
	t.Helper()
	var d struct {
		Inputs        []struct{ Name string } `json:"__inputs"`
		SchemaVersion int                     `json:"schemaVersion"`
		Panels        []struct {
			Title   string
			Type    string
			Targets []struct{ Expr string }
		}
		Templating struct {
			List []struct {
				Name  string
				Query json.RawMessage
			}
		}
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("dashboard is not valid JSON: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		t.Fatalf("dashboard has trailing data after the JSON object (%v)", err)
	}
	if !slices.ContainsFunc(d.Inputs, func(in struct{ Name string }) bool { return in.Name == "DS_PROMETHEUS" }) {
		t.Error("dashboard has no DS_PROMETHEUS input")
	}
	if d.SchemaVersion < 36 {
		t.Errorf("schemaVersion %d, want a current one (≥ 36)", d.SchemaVersion)
	}
	var out []string
	for _, p := range d.Panels {
		if p.Type != "row" && len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			out = append(out, tg.Expr)
		}
	}
	for _, v := range d.Templating.List {
		out = append(out, string(v.Query))
	}
	return out
}

// TestDashboardRuntimeSelectsJobs: a panel on the Go runtime's or the
// process's metrics, which every Go program exports, shows mailgate's scrape
// jobs only (the job variable), not every target of the Prometheus.
func TestDashboardRuntimeSelectsJobs(t *testing.T) {
	runtime := regexp.MustCompile(`\b(?:go|process)_[a-z0-9_]+`)
	n := 0
	for _, expr := range dashboardQueries(t, deployFile(t, "grafana/dashboards/mailgate.json")) {
		for _, ref := range runtime.FindAllStringIndex(expr, -1) {
			n++
			if !strings.HasPrefix(expr[ref[1]:], `{job=~"$job"`) {
				t.Errorf("%s does not select {job=~\"$job\"}", expr)
			}
		}
	}
	if n == 0 {
		t.Error("the dashboard has no Go runtime or process panel")
	}
}
