package deploy

import (
	"encoding/json"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/mailgate/mailgate/config"
	"github.com/mailgate/mailgate/mailbox"
	"github.com/mailgate/mailgate/mta"
)

// composeFile is the part of compose.yaml the tests read.
type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
}

type composeService struct {
	Image      string `yaml:"image"`
	PullPolicy string `yaml:"pull_policy"`
	Build      *struct {
		Context    string `yaml:"context"`
		Dockerfile string `yaml:"dockerfile"`
	} `yaml:"build"`
	Command         []string          `yaml:"command"`
	Environment     map[string]string `yaml:"environment"`
	Volumes         []string          `yaml:"volumes"`
	DependsOn       yaml.Node         `yaml:"depends_on"`
	StopGracePeriod string            `yaml:"stop_grace_period"`
	Deploy          struct {
		Replicas int `yaml:"replicas"`
	} `yaml:"deploy"`
	Healthcheck *struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
}

// mailgateImage is the image the mailgate services of compose.yaml run.
const mailgateImage = "mailgate:compose"

// workerShutdown is worker.Config.ShutdownTimeout's default: how long a
// stopping worker lets its SMTP transactions in flight finish.
const workerShutdown = 35 * time.Minute

func readCompose(t *testing.T) composeFile {
	t.Helper()
	b, err := os.ReadFile("compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	return c
}

// dependsOn gives a service's depends_on as service → condition (the list
// form's condition is "service_started").
func (s composeService) dependsOn(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	switch s.DependsOn.Kind {
	case 0:
	case yaml.SequenceNode:
		var names []string
		if err := s.DependsOn.Decode(&names); err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			out[n] = "service_started"
		}
	default:
		var m map[string]struct {
			Condition string `yaml:"condition"`
		}
		if err := s.DependsOn.Decode(&m); err != nil {
			t.Fatal(err)
		}
		for n, d := range m {
			out[n] = d.Condition
		}
	}
	return out
}

// mount finds the volume of s mounted at containerPath or a directory
// above it, and returns its source and the path inside that source.
func (s composeService) mount(containerPath string) (source, rest string, ok bool) {
	for _, v := range s.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) < 2 {
			continue
		}
		src, dst := parts[0], parts[1]
		if containerPath == dst {
			return src, "", true
		}
		if strings.HasPrefix(containerPath, dst+"/") {
			return src, strings.TrimPrefix(containerPath, dst+"/"), true
		}
	}
	return "", "", false
}

// hostFile is the file of this directory that s sees at containerPath
// through a bind mount; "" when no bind mount covers it.
func (s composeService) hostFile(containerPath string) string {
	src, rest, ok := s.mount(containerPath)
	if !ok || !strings.HasPrefix(src, ".") {
		return ""
	}
	return filepath.Join(filepath.FromSlash(src), filepath.FromSlash(rest))
}

func TestComposeServices(t *testing.T) {
	c := readCompose(t)
	for _, name := range []string{"init", "redis", "postgres", "migrate", "api", "worker", "poller",
		"mailpit", "bounces", "prometheus", "grafana"} {
		if _, ok := c.Services[name]; !ok {
			t.Errorf("compose.yaml has no service %s", name)
		}
	}

	redis := strings.Join(c.Services["redis"].Command, " ")
	for _, want := range []string{"--appendonly yes", "--maxmemory-policy noeviction"} {
		if !strings.Contains(redis, want) {
			t.Errorf("redis command %q lacks %s", redis, want)
		}
	}

	m := c.Services["migrate"]
	if !slices.Equal(m.Command, []string{"migrate", "up"}) {
		t.Errorf("migrate command = %q, want migrate up", m.Command)
	}
	if m.Build == nil || m.Build.Context != ".." || m.Build.Dockerfile != "Dockerfile" {
		t.Errorf("migrate must build ../Dockerfile, got %+v", m.Build)
	}
	if deps := m.dependsOn(t); deps["postgres"] != "service_healthy" || deps["init"] != "service_completed_successfully" {
		t.Errorf("migrate depends_on = %v, want postgres healthy and init completed", deps)
	}

	roles := map[string]string{"api": "api", "worker": "worker", "poller": "poller"}
	for name, s := range c.Services {
		if s.Image != mailgateImage {
			continue
		}
		if name == "migrate" {
			continue
		}
		if s.Build != nil || s.PullPolicy != "never" {
			t.Errorf("%s: only migrate builds %s; the others must use it (pull_policy never, no build)", name, mailgateImage)
		}
		if deps := s.dependsOn(t); deps["migrate"] != "service_completed_successfully" {
			t.Errorf("%s depends_on migrate = %q, want service_completed_successfully", name, deps["migrate"])
		}
		role, ok := roles[name]
		if !ok {
			t.Errorf("unexpected mailgate service %s", name)
			continue
		}
		delete(roles, name)
		if !slices.Equal(s.Command, []string{role}) {
			t.Errorf("%s command = %q, want [%s]", name, s.Command, role)
		}
	}
	for _, missing := range roles {
		t.Errorf("no service runs mailgate %s", missing)
	}

	w := c.Services["worker"]
	if w.Deploy.Replicas != 2 {
		t.Errorf("worker replicas = %d, want 2", w.Deploy.Replicas)
	}
	grace, err := time.ParseDuration(w.StopGracePeriod)
	if err != nil || grace <= workerShutdown {
		t.Errorf("worker stop_grace_period = %q, want more than %v (a worker's in-flight SMTP transactions)", w.StopGracePeriod, workerShutdown)
	}

	for name, s := range c.Services {
		for _, v := range s.Volumes {
			src, _, _ := strings.Cut(v, ":")
			if strings.HasPrefix(src, ".") {
				if _, err := os.Stat(filepath.FromSlash(src)); err != nil {
					t.Errorf("%s mounts %s: %v", name, src, err)
				}
			} else if _, ok := c.Volumes[src]; !ok {
				t.Errorf("%s mounts volume %s, which compose.yaml does not declare", name, src)
			}
		}
	}
}

// TestComposeMailgateSettings: every variable a mailgate service sets is a
// MAILGATE_* setting of config.Config (or SSL_CERT_FILE, read by Go's TLS),
// the whole set is a configuration mailgate accepts in the mode it names,
// and the URLs in it point at services of the file.
func TestComposeMailgateSettings(t *testing.T) {
	c := readCompose(t)
	settings, err := config.Settings()
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{"SSL_CERT_FILE": true}
	for _, s := range settings {
		known[s.Name] = true
	}
	seen := 0
	for name, s := range c.Services {
		if s.Image != mailgateImage {
			continue
		}
		seen++
		var environ []string
		for k, v := range s.Environment {
			if !known[k] {
				t.Errorf("%s sets %s, which is not a mailgate setting", name, k)
			}
			environ = append(environ, k+"="+v)
		}
		// The config file holds the master key, written by init at run time.
		cfgFile := s.Environment[config.ConfigFileVar]
		if src, _, ok := s.mount(cfgFile); cfgFile == "" || !ok || strings.HasPrefix(src, ".") {
			t.Errorf("%s: %s=%q is not on a volume", name, config.ConfigFileVar, cfgFile)
		}
		if !strings.Contains(strings.Join(c.Services["init"].Command, "\n"), cfgFile) {
			t.Errorf("%s reads %s, which init does not write", name, cfgFile)
		}
		if cert := s.Environment["SSL_CERT_FILE"]; cert != "" {
			if _, _, ok := s.mount(cert); !ok {
				t.Errorf("%s: SSL_CERT_FILE=%s is not mounted", name, cert)
			}
		}
		environ = slices.DeleteFunc(environ, func(kv string) bool { return strings.HasPrefix(kv, config.ConfigFileVar+"=") })
		environ = append(environ, "MAILGATE_MASTER_KEY=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
		cfg, err := config.Load(environ)
		if err != nil {
			t.Errorf("%s: mailgate refuses its settings: %v", name, err)
			continue
		}
		if !cfg.Production() {
			t.Errorf("%s runs in %s mode, want production", name, cfg.Env)
		}
		if cfg.AutoMigrate {
			t.Errorf("%s migrates on start; migrate does that once", name)
		}
		checkHost(t, c, name, "MAILGATE_DATABASE_URL", cfg.DatabaseURL)
		checkHost(t, c, name, "MAILGATE_REDIS_URL", cfg.RedisURL)
		relays, err := mta.ParseRelayURLs(strings.Join(cfg.Relays, ","))
		if err != nil {
			t.Errorf("%s: MAILGATE_RELAYS: %v", name, err)
		}
		for _, r := range relays {
			if _, ok := c.Services[r.Host]; !ok {
				t.Errorf("%s relays through %s, not a service", name, r.Host)
			}
		}
		for _, raw := range cfg.Mailboxes {
			mb, err := mailbox.ParseURL(raw)
			if err != nil {
				t.Errorf("%s: MAILGATE_MAILBOXES: %v", name, err)
				continue
			}
			if _, ok := c.Services[mb.Host]; !ok {
				t.Errorf("%s reads a mailbox on %s, not a service", name, mb.Host)
			}
		}
		if name == "poller" && len(cfg.Mailboxes) == 0 {
			t.Error("the poller has no mailbox")
		}
	}
	if seen != 4 {
		t.Errorf("%d services run %s, want 4 (migrate, api, worker, poller)", seen, mailgateImage)
	}
}

func checkHost(t *testing.T, c composeFile, service, name, raw string) {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Errorf("%s: %s: %v", service, name, err)
		return
	}
	if _, ok := c.Services[u.Hostname()]; !ok {
		t.Errorf("%s: %s names host %q, not a service", service, name, u.Hostname())
	}
}

// listenPort is the port of a MAILGATE_*LISTEN value (":8080").
func listenPort(t *testing.T, addr string) string {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("listen address %q: %v", addr, err)
	}
	return port
}

// TestComposePrometheus: the Prometheus of compose.yaml loads
// prometheus/alerts.yml and scrapes every mailgate role, each under a job
// whose name contains "mailgate" (MailgateTargetDown's selector); promtool
// accepts the configuration laid out as the container sees it.
func TestComposePrometheus(t *testing.T) {
	c := readCompose(t)
	p := c.Services["prometheus"]
	cfgPath := p.hostFile("/etc/prometheus/prometheus.yml")
	if cfgPath == "" {
		t.Fatal("prometheus: no prometheus.yml mounted at /etc/prometheus/prometheus.yml")
	}
	b, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	var prom struct {
		RuleFiles     []string `yaml:"rule_files"`
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
			DNSSDConfigs []struct {
				Names []string `yaml:"names"`
				Port  int      `yaml:"port"`
			} `yaml:"dns_sd_configs"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(b, &prom); err != nil {
		t.Fatalf("%s: %v", cfgPath, err)
	}
	var rules []string
	for _, f := range prom.RuleFiles {
		rules = append(rules, p.hostFile(path.Join("/etc/prometheus", f)))
	}
	if !slices.Contains(rules, filepath.Join("prometheus", "alerts.yml")) {
		t.Errorf("rule_files %v (on the host: %v) do not load prometheus/alerts.yml", prom.RuleFiles, rules)
	}

	scraped := map[string]string{} // "host:port" → job
	for _, sc := range prom.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			for _, target := range st.Targets {
				scraped[target] = sc.JobName
			}
		}
		for _, d := range sc.DNSSDConfigs {
			for _, n := range d.Names {
				scraped[net.JoinHostPort(n, strconv.Itoa(d.Port))] = sc.JobName
			}
		}
	}
	for _, role := range []string{"api", "worker", "poller"} {
		s := c.Services[role]
		listen := s.Environment["MAILGATE_METRICS_LISTEN"]
		if role == "api" {
			listen = s.Environment["MAILGATE_LISTEN"]
		}
		target := net.JoinHostPort(role, listenPort(t, listen))
		job, ok := scraped[target]
		switch {
		case !ok:
			t.Errorf("Prometheus does not scrape %s (%s)", role, target)
		case !strings.Contains(job, "mailgate"):
			t.Errorf("job %s scraping %s lacks \"mailgate\" in its name", job, role)
		}
	}

	// promtool checks the configuration and the rule files it names, found
	// relative to the configuration as in the container.
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("promtool is missing (Debian package prometheus)")
		}
		t.Skip("promtool is missing (Debian package prometheus)")
	}
	dir := t.TempDir()
	copyFile(t, cfgPath, filepath.Join(dir, "prometheus.yml"))
	for i, f := range prom.RuleFiles {
		copyFile(t, rules[i], filepath.Join(dir, filepath.FromSlash(f)))
	}
	if out, err := exec.Command(promtool, "check", "config", filepath.Join(dir, "prometheus.yml")).CombinedOutput(); err != nil {
		t.Errorf("promtool check config: %v\n%s", err, out)
	}
}

// TestComposeGrafana: Grafana's provisioning files parse, the data source
// is the compose Prometheus, and the dashboard provider reads the directory
// that holds grafana/dashboards/mailgate.json, whose data-source variable
// picks that default data source.
func TestComposeGrafana(t *testing.T) {
	c := readCompose(t)
	g := c.Services["grafana"]
	dsDir := g.hostFile("/etc/grafana/provisioning/datasources")
	dbDir := g.hostFile("/etc/grafana/provisioning/dashboards")
	if dsDir == "" || dbDir == "" {
		t.Fatal("grafana: the provisioning directories are not mounted")
	}

	var ds struct {
		APIVersion  int `yaml:"apiVersion"`
		Datasources []struct {
			Type      string `yaml:"type"`
			URL       string `yaml:"url"`
			IsDefault bool   `yaml:"isDefault"`
		} `yaml:"datasources"`
	}
	readYAMLFiles(t, dsDir, &ds)
	if ds.APIVersion != 1 || len(ds.Datasources) != 1 {
		t.Fatalf("data sources: want apiVersion 1 and one data source, got %+v", ds)
	}
	d := ds.Datasources[0]
	if d.Type != "prometheus" || !d.IsDefault {
		t.Errorf("data source %+v: want the default, of type prometheus", d)
	}
	if u, err := url.Parse(d.URL); err != nil || u.Hostname() != "prometheus" || u.Port() != "9090" {
		t.Errorf("data source url %q: want the prometheus service on 9090", d.URL)
	}

	var prov struct {
		APIVersion int `yaml:"apiVersion"`
		Providers  []struct {
			Type    string `yaml:"type"`
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	readYAMLFiles(t, dbDir, &prov)
	if prov.APIVersion != 1 || len(prov.Providers) != 1 || prov.Providers[0].Type != "file" {
		t.Fatalf("dashboard providers: want apiVersion 1 and one file provider, got %+v", prov)
	}
	dir := g.hostFile(prov.Providers[0].Options.Path)
	if dir != filepath.Join("grafana", "dashboards") {
		t.Fatalf("the dashboard provider reads %q, which is %q on the host, not grafana/dashboards",
			prov.Providers[0].Options.Path, dir)
	}
	b, err := os.ReadFile(filepath.Join(dir, "mailgate.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		UID        string `json:"uid"`
		Templating struct {
			List []struct {
				Name  string `json:"name"`
				Type  string `json:"type"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("mailgate.json: %v", err)
	}
	if dash.UID == "" {
		t.Error("mailgate.json has no uid")
	}
	i := slices.IndexFunc(dash.Templating.List, func(v struct {
		Name  string `json:"name"`
		Type  string `json:"type"`
		Query any    `json:"query"`
	}) bool {
		return v.Name == "DS_PROMETHEUS"
	})
	if i < 0 || dash.Templating.List[i].Type != "datasource" || dash.Templating.List[i].Query != "prometheus" {
		t.Error("mailgate.json lacks the DS_PROMETHEUS variable choosing a prometheus data source")
	}
}

// TestComposeConfig runs `docker compose config -q` (or Debian's
// docker-compose) when a client is installed; it needs no engine. Skipped
// otherwise, in CI too: no container tool is required to run the tests.
func TestComposeConfig(t *testing.T) {
	var cmd *exec.Cmd
	if docker, err := exec.LookPath("docker"); err == nil && exec.Command(docker, "compose", "version").Run() == nil {
		cmd = exec.Command(docker, "compose", "-f", "compose.yaml", "config", "-q")
	} else if dc, err := exec.LookPath("docker-compose"); err == nil {
		cmd = exec.Command(dc, "-f", "compose.yaml", "config", "-q")
	} else {
		t.Skip("neither `docker compose` nor docker-compose is installed")
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, out)
	}
}

// readYAMLFiles decodes the only YAML file of dir into v.
func readYAMLFiles(t *testing.T, dir string, v any) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) != 1 {
		t.Fatalf("%s: want one .yaml file, got %v (%v)", dir, files, err)
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(false)
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", files[0], err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestComposeTLS: mailgate refuses plaintext to anything but loopback, so
// the Mailpits must speak TLS with init's certificate: the relay STARTTLS
// on its SMTP port, the bounce mailbox implicit TLS on its POP3 port, with
// a certificate naming both hosts, trusted by mailgate through
// SSL_CERT_FILE, and the poller logging in with the mailbox's credentials.
func TestComposeTLS(t *testing.T) {
	c := readCompose(t)
	initCmd := strings.Join(c.Services["init"].Command, "\n")
	env := c.Services["worker"].Environment
	cert := env["SSL_CERT_FILE"]
	certVolume, certName, ok := c.Services["worker"].mount(cert)
	if !ok {
		t.Fatalf("SSL_CERT_FILE %q is not mounted", cert)
	}
	// flagFile is the file a Mailpit flag names, as volume and file name.
	flagFile := func(service, flag string) (string, string) {
		s := c.Services[service]
		i := slices.Index(s.Command, flag)
		if i < 0 || i+1 == len(s.Command) {
			t.Errorf("%s: no %s", service, flag)
			return "", ""
		}
		vol, name, _ := s.mount(s.Command[i+1])
		return vol, name
	}

	relays, err := mta.ParseRelayURLs(env["MAILGATE_RELAYS"])
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range relays {
		if r.TLS != mta.TLSStartTLS || r.Port != 1025 {
			t.Errorf("relay %s: want STARTTLS on Mailpit's SMTP port 1025, got tls=%s port %d", r.Host, r.TLS, r.Port)
		}
		if vol, name := flagFile(r.Host, "--smtp-tls-cert"); vol != certVolume || name != certName {
			t.Errorf("relay %s presents %s/%s, mailgate trusts %s/%s", r.Host, vol, name, certVolume, certName)
		}
		if !strings.Contains(initCmd, "DNS:"+r.Host) {
			t.Errorf("init's certificate does not name %s", r.Host)
		}
	}

	poller := c.Services["poller"]
	mb, err := mailbox.ParseURL(poller.Environment["MAILGATE_MAILBOXES"])
	if err != nil {
		t.Fatal(err)
	}
	if mb.TLS != mailbox.TLSImplicit || mb.Scheme != "pop3s" || mb.Port != 1110 {
		t.Errorf("mailbox %s: want pop3s on Mailpit's POP3 port 1110", mb.Name())
	}
	if vol, name := flagFile(mb.Host, "--pop3-tls-cert"); vol != certVolume || name != certName {
		t.Errorf("mailbox %s presents %s/%s, mailgate trusts %s/%s", mb.Host, vol, name, certVolume, certName)
	}
	if !strings.Contains(initCmd, "DNS:"+mb.Host) {
		t.Errorf("init's certificate does not name %s", mb.Host)
	}
	u, err := url.Parse(poller.Environment["MAILGATE_MAILBOXES"])
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Services[mb.Host].Environment["MP_POP3_AUTH"]; got != u.User.String() {
		t.Errorf("the poller logs in as %s, the mailbox %s accepts %q", mb.User, mb.Host, got)
	}
}
