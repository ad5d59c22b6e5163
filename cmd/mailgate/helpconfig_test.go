package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/caarlos0/env/v11"
	"github.com/google/go-cmp/cmp"

	"github.com/mailgate/mailgate/config"
)

// execCLI runs the command tree with args and returns its stdout and
// error.
func execCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root, err := rootCmd()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(io.Discard)
	root.SetArgs(args)
	err = root.Execute()
	return out.String(), err
}

// runCLI is execCLI for a command that must succeed.
func runCLI(t *testing.T, args ...string) string {
	t.Helper()
	out, err := execCLI(t, args...)
	if err != nil {
		t.Fatalf("mailgate %s: %v", strings.Join(args, " "), err)
	}
	return out
}

// listedSetting is one "  NAME (default: VALUE)" line of help config.
var listedSetting = regexp.MustCompile(`(?m)^  (MAILGATE_[A-Z0-9_]+) \(default: (.*)\)$`)

// TestHelpConfigListsWhatIsRead compares the variables `mailgate help
// config` lists, with their defaults, with those the configuration parser
// reads (env.GetFieldParams on config.Config, the parser's own reading of
// its tags, and the config file variable) and with every MAILGATE_* name
// the command's and the configuration's sources mention.
func TestHelpConfigListsWhatIsRead(t *testing.T) {
	listed := map[string]string{}
	for _, m := range listedSetting.FindAllStringSubmatch(runCLI(t, "help", "config"), -1) {
		listed[m[1]] = m[2]
	}
	params, err := env.GetFieldParams(&config.Config{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{config.ConfigFileVar: "unset"}
	for _, p := range params {
		want[p.Key] = p.DefaultValue
		if p.DefaultValue == "" {
			want[p.Key] = "unset"
		}
	}
	for _, s := range commandSettings {
		want[s.Name] = s.Default
		if s.Default == "" {
			want[s.Name] = "unset"
		}
	}
	if diff := cmp.Diff(want, listed); diff != "" {
		t.Errorf("help config (-read by the parser and the commands +listed):\n%s", diff)
	}
	for _, name := range mentionedVariables(t, ".", filepath.Join("..", "..", "config")) {
		if _, ok := listed[name]; !ok {
			t.Errorf("%s is read or named by the sources but help config does not list it", name)
		}
	}
}

// mentionedVariables lists the MAILGATE_* names in the non-test Go files of
// dirs.
func mentionedVariables(t *testing.T, dirs ...string) []string {
	t.Helper()
	name := regexp.MustCompile(`MAILGATE_[A-Z0-9_]*[A-Z0-9]`)
	var out []string
	for _, dir := range dirs {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, name.FindAllString(string(b), -1)...)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// TestServerCommandsPointAtHelpConfig: the help of every command that
// reads the configuration says where it comes from.
func TestServerCommandsPointAtHelpConfig(t *testing.T) {
	for _, args := range [][]string{{"serve"}, {"api"}, {"worker"}, {"poller"}, {"migrate", "up"},
		{"projects", "create"}, {"keys", "list"}, {"domains"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			if out := runCLI(t, append(args, "--help")...); !strings.Contains(out, "mailgate help config") {
				t.Errorf("help does not point at `mailgate help config`:\n%s", out)
			}
		})
	}
}

func TestVersionFlag(t *testing.T) {
	if got, want := runCLI(t, "--version"), runCLI(t, "version"); got != want || got != "mailgate "+version+"\n" {
		t.Errorf("--version printed %q, version %q; want both %q", got, want, "mailgate "+version+"\n")
	}
}
