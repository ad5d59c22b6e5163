package deploy

import (
	"bytes"
	"debug/buildinfo"
	"debug/elf"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// root is the repository root, seen from this directory.
const root = ".."

// buildScript is the script the Dockerfile builds the binary with.
const buildScript = "scripts/build-static.sh"

// parseDockerfile parses ../Dockerfile with BuildKit's own parser and
// linter (every check of `docker build --check`); a lint warning fails t.
func parseDockerfile(t *testing.T) []instructions.Stage {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := parser.Parse(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("Dockerfile: %v", err)
	}
	for _, w := range res.Warnings {
		t.Errorf("Dockerfile: %s", w.Short)
	}
	lint := linter.New(&linter.Config{Warn: func(rule, _, _, msg string, loc []parser.Range) {
		t.Errorf("Dockerfile lint %s: %s (line %v)", rule, msg, loc)
	}})
	stages, _, err := instructions.Parse(res.AST, lint)
	if err != nil {
		t.Fatalf("Dockerfile: %v", err)
	}
	return stages
}

// TestDockerfile: the image is distroless static, runs as nonroot, has no
// HEALTHCHECK, carries the OCI labels, listens beyond loopback on the ports
// it exposes, and its binary comes from scripts/build-static.sh.
func TestDockerfile(t *testing.T) {
	stages := parseDockerfile(t)
	if len(stages) != 2 {
		t.Fatalf("want a build stage and a runtime stage, got %d stages", len(stages))
	}
	build, final := stages[0], stages[1]

	var runsScript bool
	for _, c := range build.Commands {
		if r, ok := c.(*instructions.RunCommand); ok && strings.Contains(strings.Join(r.CmdLine, " "), "bash "+buildScript+" ") {
			runsScript = true
		}
	}
	if !runsScript {
		t.Errorf("the build stage does not run bash %s", buildScript)
	}

	if !strings.HasPrefix(final.BaseName, "gcr.io/distroless/static-") || !strings.HasSuffix(final.BaseName, ":nonroot") {
		t.Errorf("runtime base %q: want gcr.io/distroless/static-*:nonroot", final.BaseName)
	}
	labels := map[string]string{}
	env := map[string]string{}
	var user, entrypoint, binary string
	var exposed []string
	for _, c := range final.Commands {
		switch c := c.(type) {
		case *instructions.HealthCheckCommand:
			t.Error("the image has a HEALTHCHECK; orchestrators probe /healthz themselves")
		case *instructions.LabelCommand:
			for _, kv := range c.Labels {
				labels[kv.Key] = kv.Value
			}
		case *instructions.EnvCommand:
			for _, kv := range c.Env {
				env[kv.Key] = kv.Value
			}
		case *instructions.UserCommand:
			user = c.User
		case *instructions.EntrypointCommand:
			if c.PrependShell {
				t.Error("ENTRYPOINT in shell form: distroless has no shell")
			}
			entrypoint = strings.Join(c.CmdLine, " ")
		case *instructions.ExposeCommand:
			exposed = append(exposed, c.Ports...)
		case *instructions.CopyCommand:
			if c.From == build.Name && slices.Contains(c.SourcePaths, "/out/mailgate") {
				binary = c.DestPath
			}
		}
	}
	if user != "65532:65532" && user != "nonroot" && user != "nonroot:nonroot" {
		t.Errorf("USER %q: want nonroot (65532)", user)
	}
	if binary == "" || entrypoint != binary {
		t.Errorf("ENTRYPOINT %q is not the binary the build stage made (copied to %q)", entrypoint, binary)
	}
	for _, l := range []string{"title", "description", "version", "revision", "created", "licenses", "source"} {
		if labels["org.opencontainers.image."+l] == "" {
			t.Errorf("no label org.opencontainers.image.%s", l)
		}
	}
	for _, name := range []string{"MAILGATE_LISTEN", "MAILGATE_METRICS_LISTEN"} {
		host, port, err := net.SplitHostPort(env[name])
		if err != nil || (host != "" && host != "0.0.0.0" && host != "::") {
			t.Errorf("ENV %s=%q: want every interface (:PORT)", name, env[name])
			continue
		}
		if !slices.Contains(exposed, port) {
			t.Errorf("%s's port %s is not in EXPOSE %v", name, port, exposed)
		}
	}
}

// contextFiles lists the files of the repository (tracked or not, but not
// git-ignored) that .dockerignore lets into the build context.
func contextFiles(t *testing.T) []string {
	t.Helper()
	f, err := os.Open(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	patterns, err := ignorefile.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Skipf("git ls-files: %v", err) // not a git checkout
	}
	var files []string
	for name := range strings.SplitSeq(strings.TrimRight(string(out), "\x00"), "\x00") {
		if _, err := os.Stat(filepath.Join(root, name)); err != nil {
			continue // deleted in the working tree
		}
		excluded, err := pm.MatchesOrParentMatches(name)
		if err != nil {
			t.Fatal(err)
		}
		if !excluded {
			files = append(files, name)
		}
	}
	return files
}

// TestImageBinary builds the image's binary as the Dockerfile does: from a
// copy of the build context .dockerignore leaves, with the Dockerfile's
// script. It must be static (no interpreter, no shared library), pure Go
// (CGO_ENABLED=0, no openssl tag), trimmed of build paths, and run.
func TestImageBinary(t *testing.T) {
	files := contextFiles(t)
	for _, want := range []string{"go.mod", "go.sum", "openapi.yaml", buildScript, "cmd/mailgate/main.go"} {
		if !slices.Contains(files, want) {
			t.Errorf(".dockerignore leaves %s out of the build context", want)
		}
	}
	for _, f := range files {
		if strings.HasPrefix(f, "deploy/") || strings.HasSuffix(f, "_test.go") || strings.HasPrefix(f, ".tools/") {
			t.Errorf(".dockerignore lets %s into the build context", f)
		}
	}
	ctx := t.TempDir()
	for _, f := range files {
		copyFile(t, filepath.Join(root, f), filepath.Join(ctx, f))
	}
	bin := filepath.Join(t.TempDir(), "mailgate")
	cmd := exec.Command("bash", filepath.Join(ctx, buildScript), bin)
	cmd.Env = append(os.Environ(), "VERSION=v0.0.0-imagetest")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", buildScript, err, out)
	}

	ef, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer ef.Close()
	for _, p := range ef.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the binary names a dynamic loader: not static")
		}
	}
	if libs, _ := ef.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("the binary needs shared libraries %v", libs)
	}
	info, err := buildinfo.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	if settings["CGO_ENABLED"] != "0" {
		t.Errorf("CGO_ENABLED=%q, want 0", settings["CGO_ENABLED"])
	}
	if strings.Contains(settings["-tags"], "openssl") {
		t.Errorf("built with -tags=%s: the image has no libcrypto", settings["-tags"])
	}
	if settings["-trimpath"] != "true" {
		t.Error("not built with -trimpath")
	}

	out, err := exec.Command(bin, "version").Output()
	if err != nil || strings.TrimSpace(string(out)) != "mailgate v0.0.0-imagetest" {
		t.Errorf("mailgate version = %q (%v), want the VERSION it was built with", out, err)
	}
	if out, err := exec.Command(bin, "help", "config").Output(); err != nil || !bytes.Contains(out, []byte("MAILGATE_METRICS_LISTEN")) {
		t.Errorf("mailgate help config: %v\n%s", err, out)
	}
}
