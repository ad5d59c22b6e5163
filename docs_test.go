package mailgate

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
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
// recipient status and every event type the store writes.
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
