package deploy

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/mailgate/mailgate/config"
	"github.com/mailgate/mailgate/mailbox"
	"github.com/mailgate/mailgate/mta"
)

// placeholder marks every value of the Secret template.
const placeholder = "REPLACE_ME"

// manifests is one rendered kustomization, each object decoded strictly
// into its API type.
type manifests struct {
	namespaces  []corev1.Namespace
	configMaps  []corev1.ConfigMap
	secrets     []corev1.Secret
	services    []corev1.Service
	deployments []appsv1.Deployment
	jobs        []batchv1.Job
	hpas        []autoscalingv2.HorizontalPodAutoscaler
	pdbs        []policyv1.PodDisruptionBudget
	monitors    []monitoringv1.ServiceMonitor
	rules       []monitoringv1.PrometheusRule
}

// decodeStrict decodes a YAML object into v as the API server's strict
// field validation does: an unknown or duplicate field, or a value of the
// wrong type, is an error.
func decodeStrict(b []byte, v any) error { return yaml.UnmarshalStrict(b, v) }

// render builds the kustomization in dir with kustomize's own library (what
// `kubectl kustomize` runs) and decodes each object by its apiVersion and
// kind; an object of any other type fails t.
func render(t *testing.T, dir string) manifests {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	rm, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	var m manifests
	for _, r := range rm.Resources() {
		b, err := r.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		id := r.GetApiVersion() + " " + r.GetKind()
		var target any
		switch id {
		case "v1 Namespace":
			m.namespaces = append(m.namespaces, corev1.Namespace{})
			target = &m.namespaces[len(m.namespaces)-1]
		case "v1 ConfigMap":
			m.configMaps = append(m.configMaps, corev1.ConfigMap{})
			target = &m.configMaps[len(m.configMaps)-1]
		case "v1 Secret":
			m.secrets = append(m.secrets, corev1.Secret{})
			target = &m.secrets[len(m.secrets)-1]
		case "v1 Service":
			m.services = append(m.services, corev1.Service{})
			target = &m.services[len(m.services)-1]
		case "apps/v1 Deployment":
			m.deployments = append(m.deployments, appsv1.Deployment{})
			target = &m.deployments[len(m.deployments)-1]
		case "batch/v1 Job":
			m.jobs = append(m.jobs, batchv1.Job{})
			target = &m.jobs[len(m.jobs)-1]
		case "autoscaling/v2 HorizontalPodAutoscaler":
			m.hpas = append(m.hpas, autoscalingv2.HorizontalPodAutoscaler{})
			target = &m.hpas[len(m.hpas)-1]
		case "policy/v1 PodDisruptionBudget":
			m.pdbs = append(m.pdbs, policyv1.PodDisruptionBudget{})
			target = &m.pdbs[len(m.pdbs)-1]
		case "monitoring.coreos.com/v1 ServiceMonitor":
			m.monitors = append(m.monitors, monitoringv1.ServiceMonitor{})
			target = &m.monitors[len(m.monitors)-1]
		case "monitoring.coreos.com/v1 PrometheusRule":
			m.rules = append(m.rules, monitoringv1.PrometheusRule{})
			target = &m.rules[len(m.rules)-1]
		default:
			t.Errorf("%s: unexpected object %s %s", dir, id, r.GetName())
			continue
		}
		if err := decodeStrict(b, target); err != nil {
			t.Errorf("%s: %s %s does not validate: %v", dir, id, r.GetName(), err)
		}
	}
	return m
}

// overlays lists the overlay directories.
func overlays(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("k8s", "overlays", "*", "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for _, f := range files {
		dirs = append(dirs, filepath.Dir(f))
	}
	if len(dirs) < 2 {
		t.Fatalf("want at least two overlays under k8s/overlays, found %v", dirs)
	}
	return dirs
}

// TestKustomizeOverlays renders every overlay (and the base) and checks
// what it holds against the API types and against mailgate: the roles, the
// probes on the ports mailgate listens on, the settings, the worker's
// shutdown, the selectors, autoscalers and disruption budgets, and the
// monitoring objects.
func TestKustomizeOverlays(t *testing.T) {
	for _, dir := range append([]string{filepath.Join("k8s", "base")}, overlays(t)...) {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			m := render(t, dir)
			overlay := filepath.Base(filepath.Dir(dir)) == "overlays"
			checkObjects(t, m, overlay)
			env := checkSettings(t, m)
			checkWorkloads(t, m, env, overlay)
			checkSelectors(t, m)
			checkMonitoring(t, m)
		})
	}
}

func checkObjects(t *testing.T, m manifests, overlay bool) {
	t.Helper()
	counts := map[string][2]int{
		"ConfigMap":      {len(m.configMaps), 1},
		"Secret":         {len(m.secrets), 1},
		"Service":        {len(m.services), 3},
		"Deployment":     {len(m.deployments), 3},
		"Job":            {len(m.jobs), 1},
		"HPA":            {len(m.hpas), 2},
		"PDB":            {len(m.pdbs), 3},
		"ServiceMonitor": {len(m.monitors), 1},
		"PrometheusRule": {len(m.rules), 1},
	}
	for kind, c := range counts {
		if c[0] != c[1] {
			t.Errorf("%d %s objects, want %d", c[0], kind, c[1])
		}
	}
	if overlay && len(m.namespaces) != 1 {
		t.Errorf("an overlay has %d Namespaces, want 1", len(m.namespaces))
	}
}

// checkSettings: the ConfigMap and the Secret set only mailgate settings;
// the Secret holds placeholders only; together (with a master key in place
// of its placeholder) they are a production configuration mailgate
// accepts. It returns the settings.
func checkSettings(t *testing.T, m manifests) map[string]string {
	t.Helper()
	if len(m.configMaps) != 1 || len(m.secrets) != 1 {
		t.FailNow()
	}
	settings, err := config.Settings()
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{}
	for _, s := range settings {
		known[s.Name] = true
	}
	env := map[string]string{}
	for k, v := range m.configMaps[0].Data {
		env[k] = v
	}
	for k, v := range m.secrets[0].StringData {
		if !strings.Contains(v, placeholder) {
			t.Errorf("Secret %s: %s holds no %s: the template must never carry a real value", m.secrets[0].Name, k, placeholder)
		}
		env[k] = v
	}
	if len(m.secrets[0].Data) > 0 {
		t.Errorf("Secret %s has data; the template sets stringData placeholders only", m.secrets[0].Name)
	}
	var environ []string
	for k, v := range env {
		if !known[k] {
			t.Errorf("%s is not a mailgate setting", k)
		}
		if k == "MAILGATE_MASTER_KEY" {
			v = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
		}
		environ = append(environ, k+"="+v)
	}
	cfg, err := config.Load(environ)
	if err != nil {
		t.Fatalf("mailgate refuses the settings: %v", err)
	}
	if !cfg.Production() || cfg.AutoMigrate {
		t.Errorf("want production mode and no migration on start (the Job migrates), got env %s, auto-migrate %t", cfg.Env, cfg.AutoMigrate)
	}
	if !strings.HasPrefix(cfg.DatabaseURL, "postgres://") {
		t.Errorf("MAILGATE_DATABASE_URL %q: pods share one PostgreSQL", cfg.DatabaseURL)
	}
	if _, err := mta.ParseRelayURLs(strings.Join(cfg.Relays, ",")); err != nil {
		t.Errorf("MAILGATE_RELAYS: %v", err)
	}
	for _, mb := range cfg.Mailboxes {
		if _, err := mailbox.ParseURL(mb); err != nil {
			t.Errorf("MAILGATE_MAILBOXES: %v", err)
		}
	}
	return env
}

// podSpecs are the pod templates of the Deployments and the Job by name.
func podSpecs(m manifests) map[string]corev1.PodTemplateSpec {
	out := map[string]corev1.PodTemplateSpec{}
	for _, d := range m.deployments {
		out[d.Name] = d.Spec.Template
	}
	for _, j := range m.jobs {
		out[j.Name] = j.Spec.Template
	}
	return out
}

func checkWorkloads(t *testing.T, m manifests, env map[string]string, overlay bool) {
	t.Helper()
	roles := map[string][]string{
		"mailgate-api": {"api"}, "mailgate-worker": {"worker"}, "mailgate-poller": {"poller"},
		"mailgate-migrate": {"migrate", "up"},
	}
	listen := map[string]string{
		"mailgate-api": env["MAILGATE_LISTEN"], "mailgate-worker": env["MAILGATE_METRICS_LISTEN"],
		"mailgate-poller": env["MAILGATE_METRICS_LISTEN"],
	}
	images := map[string]bool{}
	for name, pod := range podSpecs(m) {
		role, ok := roles[name]
		if !ok {
			t.Errorf("unexpected workload %s", name)
			continue
		}
		spec := pod.Spec
		if len(spec.Containers) != 1 {
			t.Errorf("%s: want one container, got %d", name, len(spec.Containers))
			continue
		}
		c := spec.Containers[0]
		images[c.Image] = true
		if !slices.Equal(c.Args, role) {
			t.Errorf("%s runs mailgate %q, want %q", name, c.Args, role)
		}
		var refs []string
		for _, e := range c.EnvFrom {
			switch {
			case e.ConfigMapRef != nil:
				refs = append(refs, "ConfigMap "+e.ConfigMapRef.Name)
			case e.SecretRef != nil:
				refs = append(refs, "Secret "+e.SecretRef.Name)
			}
		}
		if want := []string{"ConfigMap " + m.configMaps[0].Name, "Secret " + m.secrets[0].Name}; !slices.Equal(refs, want) {
			t.Errorf("%s takes its environment from %v, want %v", name, refs, want)
		}
		if len(c.Env) > 0 {
			t.Errorf("%s sets env itself; settings belong in the ConfigMap or the Secret", name)
		}
		if spec.EnableServiceLinks == nil || *spec.EnableServiceLinks {
			t.Errorf("%s: enableServiceLinks must be false (service links set MAILGATE_* variables)", name)
		}
		if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
			t.Errorf("%s mounts a service account token it does not use", name)
		}
		if sc := spec.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
			t.Errorf("%s may run as root", name)
		}
		if sc := c.SecurityContext; sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
			sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			t.Errorf("%s: want a read-only root file system and no privilege escalation", name)
		}
		r := c.Resources
		if r.Requests.Cpu().IsZero() || r.Requests.Memory().IsZero() || r.Limits.Memory().IsZero() {
			t.Errorf("%s: want CPU and memory requests and a memory limit, got %v", name, r)
		}
		if r.Limits.Memory().Cmp(*r.Requests.Memory()) < 0 {
			t.Errorf("%s: memory limit below the request", name)
		}
		if name == "mailgate-migrate" {
			continue
		}
		port := listenPort(t, listen[name])
		checkProbe(t, name, "liveness", c.LivenessProbe, "/healthz", c.Ports, port)
		checkProbe(t, name, "readiness", c.ReadinessProbe, "/readyz", c.Ports, port)
		if c.StartupProbe != nil {
			checkProbe(t, name, "startup", c.StartupProbe, "/healthz", c.Ports, port)
		}
	}
	if len(images) != 1 {
		t.Errorf("the workloads run different images: %v", images)
	}
	for image := range images {
		if overlay && (!strings.Contains(image, "/") || !strings.Contains(image, ":")) {
			t.Errorf("image %q: an overlay names a registry and a tag", image)
		}
	}

	for _, d := range m.deployments {
		if d.Name != "mailgate-worker" {
			continue
		}
		grace := d.Spec.Template.Spec.TerminationGracePeriodSeconds
		if grace == nil || *grace <= int64(workerShutdown.Seconds()) {
			t.Errorf("worker terminationGracePeriodSeconds = %s, want more than %v (SMTP transactions in flight finish)",
				ptrString(grace), workerShutdown)
		}
	}
}

// checkProbe: an HTTP GET of path on the named container port that is the
// port mailgate listens on.
func checkProbe(t *testing.T, name, kind string, p *corev1.Probe, path string, ports []corev1.ContainerPort, listenPort string) {
	t.Helper()
	if p == nil || p.HTTPGet == nil {
		t.Errorf("%s: no HTTP %s probe", name, kind)
		return
	}
	if p.HTTPGet.Path != path {
		t.Errorf("%s: %s probe on %s, want %s", name, kind, p.HTTPGet.Path, path)
	}
	i := slices.IndexFunc(ports, func(cp corev1.ContainerPort) bool {
		return cp.Name == p.HTTPGet.Port.String() || strconv.Itoa(int(cp.ContainerPort)) == p.HTTPGet.Port.String()
	})
	if i < 0 {
		t.Errorf("%s: %s probe port %s is not a container port", name, kind, p.HTTPGet.Port.String())
		return
	}
	if got := strconv.Itoa(int(ports[i].ContainerPort)); got != listenPort {
		t.Errorf("%s: %s probe on port %s, but mailgate listens on %s", name, kind, got, listenPort)
	}
}

// podsOf is the Deployment whose pod template sel selects; "" when none or
// several do.
func podsOf(m manifests, sel labels.Selector) string {
	var found []string
	for _, d := range m.deployments {
		if sel.Matches(labels.Set(d.Spec.Template.Labels)) {
			found = append(found, d.Name)
		}
	}
	if len(found) != 1 {
		return ""
	}
	return found[0]
}

func checkSelectors(t *testing.T, m manifests) {
	t.Helper()
	deployments := map[string]appsv1.Deployment{}
	for _, d := range m.deployments {
		deployments[d.Name] = d
		sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
		if err != nil || !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
			t.Errorf("Deployment %s: its selector does not select its own pods (%v)", d.Name, err)
		}
	}
	for _, s := range m.services {
		target := podsOf(m, labels.SelectorFromSet(s.Spec.Selector))
		if target == "" {
			t.Errorf("Service %s selects the pods of no single Deployment", s.Name)
			continue
		}
		ports := deployments[target].Spec.Template.Spec.Containers[0].Ports
		for _, p := range s.Spec.Ports {
			if !slices.ContainsFunc(ports, func(cp corev1.ContainerPort) bool { return cp.Name == p.TargetPort.String() }) {
				t.Errorf("Service %s: targetPort %s is not a port of %s", s.Name, p.TargetPort.String(), target)
			}
		}
	}
	for _, p := range m.pdbs {
		sel, err := metav1.LabelSelectorAsSelector(p.Spec.Selector)
		if err != nil || podsOf(m, sel) == "" {
			t.Errorf("PodDisruptionBudget %s covers the pods of no single Deployment", p.Name)
		}
	}
	scaled := map[string]bool{}
	for _, h := range m.hpas {
		ref := h.Spec.ScaleTargetRef
		d, ok := deployments[ref.Name]
		if ref.Kind != "Deployment" || !ok {
			t.Errorf("HPA %s scales %s %s, not a Deployment here", h.Name, ref.Kind, ref.Name)
			continue
		}
		scaled[ref.Name] = true
		if h.Spec.MinReplicas == nil || *h.Spec.MinReplicas < 1 || *h.Spec.MinReplicas > h.Spec.MaxReplicas {
			t.Errorf("HPA %s: replicas %v to %d", h.Name, h.Spec.MinReplicas, h.Spec.MaxReplicas)
		}
		if d.Spec.Replicas != nil {
			t.Errorf("Deployment %s sets replicas, which would fight its HPA on every apply", d.Name)
		}
		for _, metric := range h.Spec.Metrics {
			if metric.Resource != nil && d.Spec.Template.Spec.Containers[0].Resources.Requests.Name(metric.Resource.Name, "").IsZero() {
				t.Errorf("HPA %s scales on %s, which %s does not request", h.Name, metric.Resource.Name, d.Name)
			}
		}
	}
	for _, name := range []string{"mailgate-api", "mailgate-worker"} {
		if !scaled[name] {
			t.Errorf("no HPA scales %s", name)
		}
	}
}

// checkMonitoring: the ServiceMonitor scrapes every Service, each on one of
// its ports, under a job name containing "mailgate" (MailgateTargetDown's
// selector and the dashboard's job variable), and the PrometheusRule holds
// the groups of prometheus/alerts.yml.
func checkMonitoring(t *testing.T, m manifests) {
	t.Helper()
	if len(m.monitors) != 1 || len(m.rules) != 1 {
		t.FailNow()
	}
	sm := m.monitors[0]
	sel, err := metav1.LabelSelectorAsSelector(&sm.Spec.Selector)
	if err != nil {
		t.Fatal(err)
	}
	if sm.Spec.JobLabel != "" {
		t.Errorf("ServiceMonitor sets jobLabel %s: the job must stay the Service's name", sm.Spec.JobLabel)
	}
	if sm.Spec.NamespaceSelector.Any || len(sm.Spec.NamespaceSelector.MatchNames) > 0 {
		t.Error("ServiceMonitor: want the Services of its own namespace")
	}
	var endpointPorts []string
	for _, e := range sm.Spec.Endpoints {
		if e.Path != "/metrics" {
			t.Errorf("ServiceMonitor endpoint %s scrapes %s, want /metrics", e.Port, e.Path)
		}
		endpointPorts = append(endpointPorts, e.Port)
	}
	for _, s := range m.services {
		if !sel.Matches(labels.Set(s.Labels)) {
			t.Errorf("ServiceMonitor does not select Service %s", s.Name)
		}
		if !strings.Contains(s.Name, "mailgate") {
			t.Errorf("Service %s: its name, the job label, lacks \"mailgate\"", s.Name)
		}
		scraped := 0
		for _, p := range s.Spec.Ports {
			if slices.Contains(endpointPorts, p.Name) {
				scraped++
			}
		}
		if scraped != 1 {
			t.Errorf("Service %s is scraped on %d ports, want 1", s.Name, scraped)
		}
	}

	b, err := os.ReadFile(AlertsPath)
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Groups []monitoringv1.RuleGroup `json:"groups"`
	}
	if err := decodeStrict(b, &file); err != nil {
		t.Fatalf("%s: %v", AlertsPath, err)
	}
	if len(file.Groups) == 0 {
		t.Fatalf("%s has no groups", AlertsPath)
	}
	if got := m.rules[0].Spec.Groups; !reflect.DeepEqual(got, file.Groups) {
		t.Errorf("the PrometheusRule's groups differ from %s (run `go run ./cmd/promrule` in deploy/)", AlertsPath)
	}
}

// TestPrometheusRuleInSync: k8s/base/prometheusrule.yaml is what
// cmd/promrule writes from prometheus/alerts.yml today.
func TestPrometheusRuleInSync(t *testing.T) {
	alerts, err := os.ReadFile(AlertsPath)
	if err != nil {
		t.Fatal(err)
	}
	want, err := PrometheusRule(alerts)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(PrometheusRulePath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s is out of step with %s: run `go run ./cmd/promrule` in deploy/", PrometheusRulePath, AlertsPath)
	}
}

// TestPrometheusRuleRejectsOtherFiles: the generator takes a rule file and
// nothing else.
func TestPrometheusRuleRejectsOtherFiles(t *testing.T) {
	for _, in := range []string{"groups: []\nextra: 1\n", "rules: []\n", "{{"} {
		if _, err := PrometheusRule([]byte(in)); err == nil {
			t.Errorf("PrometheusRule(%q) = nil error", in)
		}
	}
}

func ptrString(p *int64) string {
	if p == nil {
		return "unset"
	}
	return strconv.FormatInt(*p, 10)
}
