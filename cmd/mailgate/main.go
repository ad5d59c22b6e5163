// Command mailgate is the HTTP-to-SMTP transactional email gateway: one
// binary whose subcommands run each role (serve, api, worker, poller) and
// the administration tasks (migrate, projects, keys, domains, inspect,
// dkim). It is the only package that reads the environment and flags; it
// wires the packages together.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// defaultGCPercent replaces the Go runtime's GOGC=100 when the GOGC
// environment variable is unset. The API allocates a lot per request
// (JSON decoding twice, validation, SQL arguments) and little of it lives
// on, so collecting half as often trades a few MB of heap for CPU (an
// earlier run with GOGC=400 accepted ~10 % more messages/s on 2 cores; 200
// keeps the heap smaller). Set GOGC to override.
const defaultGCPercent = 200

func main() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(defaultGCPercent)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := startPprof(ctx)
	var root *cobra.Command
	if err == nil {
		root, err = rootCmd()
	}
	if err == nil {
		err = root.ExecuteContext(ctx)
	}
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "mailgate:", err)
		os.Exit(1)
	}
}

// rootCmd is the command tree: the roles, the administration commands and
// the help topic "config".
func rootCmd() (*cobra.Command, error) {
	root := &cobra.Command{
		Use:           "mailgate",
		Short:         "HTTP-to-SMTP transactional email gateway",
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetVersionTemplate("mailgate {{.Version}}\n")
	topic, err := configTopic()
	if err != nil {
		return nil, err
	}
	configured := []*cobra.Command{serveCmd(), apiCmd(), workerCmd(), pollerCmd(), migrateCmd(), projectsCmd(), keysCmd()}
	for _, c := range configured {
		noteConfig(c)
	}
	root.AddCommand(configured...)
	root.AddCommand(domainsCmd(), webhooksCmd(), dkimCmd(), inspectCmd(), versionCmd(), topic)
	return root, nil
}

// noteConfig ends the help of c and its subcommands, which read the
// configuration, with configNote.
func noteConfig(c *cobra.Command) {
	long := c.Long
	if long == "" {
		long = c.Short + "."
	}
	c.Long = long + "\n\n" + configNote
	for _, sub := range c.Commands() {
		noteConfig(sub)
	}
}

func versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintln(cmd.OutOrStdout(), "mailgate", version)
		},
	}
}
