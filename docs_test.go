package mailgate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/testsvc"
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

// walkthroughShellBlocks returns the ```sh blocks of docs/walkthrough.md,
// in order.
func walkthroughShellBlocks(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("docs/walkthrough.md")
	if err != nil {
		t.Fatal(err)
	}
	var blocks []string
	for _, m := range regexp.MustCompile("(?ms)^```sh\n(.*?)^```$").FindAllStringSubmatch(string(b), -1) {
		blocks = append(blocks, m[1])
	}
	if len(blocks) < 5 {
		t.Fatalf("docs/walkthrough.md has %d sh blocks, want the steps 1 to 6", len(blocks))
	}
	return blocks
}

// walkthroughOutputAfter returns the block of docs/walkthrough.md that
// follows the ```sh block holding command alone.
func walkthroughOutputAfter(t *testing.T, command string) string {
	t.Helper()
	b, err := os.ReadFile("docs/walkthrough.md")
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile("(?ms)^```sh\n" + regexp.QuoteMeta(command) + "\n```\n.*?^```[a-z]*\n(.*?)^```$")
	m := re.FindStringSubmatch(string(b))
	if m == nil {
		t.Fatalf("docs/walkthrough.md shows no output after the command %q", command)
	}
	return m[1]
}

// TestDocsWalkthroughPasteable: the walkthrough's commands hold nothing
// that only the author's run had: no Mailpit message id, message id or
// token typed in, no fixed file under /tmp (mktemp makes the directory),
// and no port but the defaults of `make run` (TestDocsWalkthrough moves
// those).
func TestDocsWalkthroughPasteable(t *testing.T) {
	blocks := walkthroughShellBlocks(t)
	literal := map[string]*regexp.Regexp{
		"a Mailpit message id": regexp.MustCompile(`/api/v1/message/[A-Za-z0-9]`),
		"a message id":         regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-`),
		"an API token":         regexp.MustCompile(`mg_[A-Za-z0-9]`),
		"a file under /tmp":    regexp.MustCompile(`/tmp/`),
	}
	port := regexp.MustCompile(`127\.0\.0\.1:(\d+)`)
	mktemp := false
	for _, block := range blocks {
		for what, re := range literal {
			if re.MatchString(block) {
				t.Errorf("a command block of docs/walkthrough.md holds %s (%q):\n%s", what, re.FindString(block), block)
			}
		}
		for _, m := range port.FindAllStringSubmatch(block, -1) {
			if m[1] != "8080" && m[1] != "8025" {
				t.Errorf("docs/walkthrough.md uses 127.0.0.1:%s, not a default port of make run (8080, 8025):\n%s", m[1], block)
			}
		}
		mktemp = mktemp || strings.Contains(block, "$(mktemp")
	}
	if !mktemp {
		t.Error("docs/walkthrough.md keeps its files in no mktemp directory")
	}
}

// TestDocsRunEnvAbsolute: the ./data/env that scripts/run.sh writes names
// the database by an absolute path, also when the user gave a relative
// sqlite:PATH, so that sourcing it from another directory reaches the
// gateway's database instead of creating an empty one there.
func TestDocsRunEnvAbsolute(t *testing.T) {
	root, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ given, want string }{
		{"", "sqlite:DATA/mailgate.db"},
		{"sqlite:./var/mg.db", "sqlite:" + root + "/var/mg.db"},
		{"sqlite://rel/mg.db", "sqlite:" + root + "/rel/mg.db"},
		{"sqlite:/srv/mg.db", "sqlite:/srv/mg.db"},
		{"postgres://u@127.0.0.1/mg", "postgres://u@127.0.0.1/mg"},
	} {
		data := filepath.Join(t.TempDir(), "data")
		want := strings.ReplaceAll(tc.want, "DATA", data)
		// write_env as main calls it, from the repository root; then
		// the file is sourced from another directory.
		script := `set -euo pipefail
source scripts/run.sh
cd "$MG_ROOT"
export MAILGATE_REDIS_URL=redis://127.0.0.1:1/0 MAILGATE_MASTER_KEY=k
set_defaults
write_env
cd /
source "$1/env"
printf '%s\n' "$MAILGATE_DATABASE_URL"`
		cmd := exec.Command("bash", "-c", script, "bash", data)
		cmd.Env = append(withoutMailgateEnv(), "MAILGATE_RUN_DATA="+data)
		if tc.given != "" {
			cmd.Env = append(cmd.Env, "MAILGATE_DATABASE_URL="+tc.given)
		}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("write_env with MAILGATE_DATABASE_URL=%q: %v\n%s", tc.given, err, out)
		}
		if got := strings.TrimSpace(string(out)); got != want {
			t.Errorf("MAILGATE_DATABASE_URL=%q: ./data/env holds %q, want %q", tc.given, got, want)
		}
		info, err := os.Stat(filepath.Join(data, "env"))
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode().Perm() != 0o600 {
			t.Errorf("./data/env has mode %v, want 0600 (it holds the master key)", info.Mode().Perm())
		}
	}
}

// withoutMailgateEnv is this process' environment without the settings of
// mailgate and of its scripts (MAILGATE_*, MG_*), which would change what
// run.sh does; MAILGATE_OPENSSL, a build choice, is kept.
func withoutMailgateEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if (strings.HasPrefix(kv, "MAILGATE_") && !strings.HasPrefix(kv, "MAILGATE_OPENSSL=")) ||
			strings.HasPrefix(kv, "MG_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// TestDocsWalkthrough runs docs/walkthrough.md as a reader would: `make
// run`'s script (scripts/run.sh) in the foreground, on free loopback
// ports and with its ./data in a temporary directory, then the
// walkthrough's commands pasted into bash from that directory (the ports
// they name replaced by the ones in use). Every command must succeed, the
// signatures must verify, and Ctrl-C (SIGINT to the process group) must stop
// the gateway, Mailpit and the private Redis.
func TestDocsWalkthrough(t *testing.T) {
	if testing.Short() && os.Getenv("CI") != "true" {
		t.Skip("starts a gateway (-short)")
	}
	requireRunTools(t)
	root, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.Symlink(filepath.Join(root, "bin"), filepath.Join(dir, "bin")); err != nil {
		t.Fatal(err)
	}
	listen := "127.0.0.1:" + freePort(t)
	mailpitSMTP, mailpitHTTP, redisPort := freePort(t), freePort(t), freePort(t)
	env := withoutMailgateEnv()
	run := exec.Command("bash", "scripts/run.sh")
	run.Env = append(env, "MAILGATE_RUN_DATA="+filepath.Join(dir, "data"), "MAILGATE_LISTEN="+listen,
		"MAILGATE_RUN_REDIS_PORT="+redisPort, "MAILGATE_RUN_MAILPIT_SMTP_PORT="+mailpitSMTP,
		"MAILGATE_RUN_MAILPIT_HTTP_PORT="+mailpitHTTP)
	var runOut syncBuffer
	run.Stdout, run.Stderr = &runOut, &runOut
	run.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	// exited is closed once make run has ended, with its error in runErr.
	exited := make(chan struct{})
	var runErr error
	go func() { runErr = run.Wait(); close(exited) }()
	t.Cleanup(func() {
		select {
		case <-exited:
		default: // a failed test: stop everything, Redis included
			_ = syscall.Kill(-run.Process.Pid, syscall.SIGKILL)
			<-exited
			_ = exec.Command("redis-cli", "-p", redisPort, "shutdown", "nosave").Run()
		}
		if t.Failed() {
			t.Logf("--- make run's output ---\n%s", runOut.String())
		}
	})
	waitReady(t, "http://"+listen+"/readyz", exited)

	// What make run printed, back on its default ports and ./data, is
	// what step 1 shows (which has the lines of a first run too).
	defaults := strings.NewReplacer(listen, "127.0.0.1:8080", "127.0.0.1:"+mailpitSMTP, "127.0.0.1:1025",
		"127.0.0.1:"+mailpitHTTP, "127.0.0.1:8025", "127.0.0.1:"+redisPort, "127.0.0.1:6390",
		filepath.Join(dir, "data"), "./data")
	step1 := walkthroughOutputAfter(t, "make run")
	printed, _, _ := strings.Cut(runOut.String(), "\n\n")
	for _, line := range strings.Split(defaults.Replace(printed+"\nmailgate serve is starting on http://"+listen+" (Ctrl-C stops it)."), "\n") {
		if !strings.Contains(step1, line+"\n") {
			t.Errorf("make run printed %q, which step 1 of docs/walkthrough.md does not show", line)
		}
	}

	script := "set -euo pipefail\n"
	for _, block := range walkthroughShellBlocks(t) {
		if strings.TrimSpace(block) == "make run" {
			continue
		}
		script += strings.NewReplacer("127.0.0.1:8080", listen, "127.0.0.1:8025", "127.0.0.1:"+mailpitHTTP).Replace(block)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	paste := exec.CommandContext(ctx, "bash", "-c", script)
	// The walkthrough's mktemp files go under the test's directory.
	paste.Dir, paste.Env = dir, append(env, "TMPDIR="+dir)
	var stdout, stderr bytes.Buffer
	paste.Stdout, paste.Stderr = &stdout, &stderr
	if err := paste.Run(); err != nil {
		t.Fatalf("the walkthrough's commands: %v\n--- stdout ---\n%s\n--- stderr ---\n%s", err, stdout.String(), stderr.String())
	}
	out := stdout.String()
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^mg_\S+$`),                                                    // step 2: the token
		regexp.MustCompile(`(?m)^TXT example\.com v=spf1 ip4:127\.0\.0\.1 ~all$`),             // step 3
		regexp.MustCompile(`(?m)^    "status": "sent",$`),                                     // step 4: mailgate's view
		regexp.MustCompile(`(?m)^\S+ Your order #1234 to: \['ann@example\.org'\] bcc: \[\]$`), // step 5
		regexp.MustCompile(`(?m)^DKIM-Signature: a=ed25519-sha256;`),                          // step 5: the raw message
		regexp.MustCompile(`(?m)^\[True, True\]$`),                                            // step 6
	} {
		if !want.MatchString(out) {
			t.Errorf("the walkthrough's output has no line matching %s:\n%s", want, out)
		}
	}

	// Ctrl-C in make run's terminal.
	if err := syscall.Kill(-run.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
		if runErr != nil {
			t.Errorf("make run ended with %v after Ctrl-C, want exit 0", runErr)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("make run still runs 30 s after Ctrl-C")
	}
	for _, port := range []string{strings.TrimPrefix(listen, "127.0.0.1:"), mailpitSMTP, mailpitHTTP, redisPort} {
		if conn, err := net.DialTimeout("tcp", "127.0.0.1:"+port, time.Second); err == nil {
			conn.Close()
			t.Errorf("127.0.0.1:%s still answers after make run stopped", port)
		}
	}
}

// requireRunTools skips the test (fails it in CI) unless what scripts/run.sh
// would otherwise install or build is there: Redis, the C toolchain of the
// openssl build, Mailpit in ./.tools/bin, and python3-dkim for the
// walkthrough's last step.
func requireRunTools(t *testing.T) {
	t.Helper()
	for _, command := range []string{"redis-server", "redis-cli"} {
		if _, err := exec.LookPath(command); err != nil {
			testsvc.Missing(t, command, err)
		}
	}
	missing, err := exec.Command("bash", "-c", "source scripts/lib.sh && missing_packages gcc libc6-dev libssl-dev").Output()
	if err != nil || len(bytes.TrimSpace(missing)) > 0 {
		testsvc.Missing(t, "the openssl build's packages", fmt.Errorf("missing: %q (%v)", missing, err))
	}
	if _, err := os.Stat(".tools/bin/mailpit"); err != nil {
		testsvc.Missing(t, "mailpit (bash scripts/tools.sh builds it)", err)
	}
	if out, err := exec.Command("/usr/bin/python3", "-c", "import dkim").CombinedOutput(); err != nil {
		testsvc.Missing(t, "python3-dkim", fmt.Errorf("%v: %s", err, out))
	}
}

// freePort is a TCP port free on 127.0.0.1 a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

// waitReady polls url until it answers 200, failing early when the script
// ends. The script builds ./bin/mailgate first: a link of cached packages
// (a few seconds) after make test's lint compiled them, longer from a cold
// build cache, hence the two minutes.
func waitReady(t *testing.T, url string, exited <-chan struct{}) {
	t.Helper()
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(2 * time.Minute)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for time.Now().Before(deadline) {
		if resp, err := client.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-exited:
			t.Fatalf("make run ended before %s answered", url)
		case <-tick.C:
		}
	}
	t.Fatalf("%s did not answer 200 within 2 minutes", url)
}

// syncBuffer is a bytes.Buffer safe for a process' two output streams.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
