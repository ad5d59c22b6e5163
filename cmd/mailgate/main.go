// Command mailgate is the HTTP-to-SMTP transactional email gateway: one
// binary whose subcommands run each role (serve, api, worker, poller) and
// the administration tasks (migrate, projects, keys, inspect, dkim). It is
// the only package that reads the environment and flags; it wires the
// packages together.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := startPprof(ctx)
	if err == nil {
		err = rootCmd().ExecuteContext(ctx)
	}
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "mailgate:", err)
		os.Exit(1)
	}
}

func rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "mailgate",
		Short:         "HTTP-to-SMTP transactional email gateway",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(serveCmd(), apiCmd(), workerCmd(), pollerCmd(), migrateCmd(),
		projectsCmd(), keysCmd(), dkimCmd(), inspectCmd(), versionCmd())
	return root
}

func versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "print the version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintln(cmd.OutOrStdout(), "mailgate", version)
		},
	}
}
