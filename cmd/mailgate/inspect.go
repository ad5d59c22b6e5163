package main

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/mailgate/mailgate/bounce"
)

// maxInspectBytes bounds what inspect reads (the parser truncates past
// its own limit anyway).
const maxInspectBytes = 64 << 20

func inspectCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "inspect FILE|-",
		Short: "Classify one returned email offline and print the report as JSON",
		Long: "inspect reads one email (a bounce, complaint, auto-reply or reply) from FILE, " +
			"or from standard input with -, and prints what mailgate makes of it: kind, " +
			"per-recipient results, feedback type, what it points at, and the stripped reply " +
			"text. It needs no database and no configuration.",
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			raw, err := readInput(c.InOrStdin(), args[0])
			if err != nil {
				return err
			}
			r, err := bounce.Parse(raw)
			if err != nil {
				return fmt.Errorf("inspect: %w", err)
			}
			out, err := r.JSON()
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(c.OutOrStdout(), string(out))
			return err
		},
	}
}

func readInput(stdin io.Reader, name string) ([]byte, error) {
	r := stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	return io.ReadAll(io.LimitReader(r, maxInspectBytes))
}
