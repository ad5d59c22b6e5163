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
	var explain bool
	var rulesPath string
	c := &cobra.Command{
		Use:   "inspect FILE|-",
		Short: "Classify one returned email offline and print the report as JSON",
		Long: "inspect reads one email (a bounce, complaint, auto-reply or reply) from FILE, " +
			"or from standard input with -, and prints what mailgate makes of it: kind, " +
			"per-recipient results (each naming the rule that decided its reason), feedback type, " +
			"what it points at, and the stripped reply text. With --explain it prints the decision " +
			"path instead; --rules reads an operator rule file (the format of MAILGATE_BOUNCE_RULES). " +
			"It needs no database and no configuration.",
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			rules, err := loadBounceRules(rulesPath)
			if err != nil {
				return fmt.Errorf("inspect: %w", err)
			}
			raw, err := readInput(c.InOrStdin(), args[0])
			if err != nil {
				return err
			}
			r, err := bounce.New(bounce.Limits{}, rules...).Parse(raw)
			if err != nil {
				return fmt.Errorf("inspect: %w", err)
			}
			if explain {
				_, err = fmt.Fprint(c.OutOrStdout(), r.Explain())
				return err
			}
			out, err := r.JSON()
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(c.OutOrStdout(), string(out))
			return err
		},
	}
	c.Flags().BoolVar(&explain, "explain", false, "print the decision path (diagnostic, status, rule, reason, hard) instead of JSON")
	c.Flags().StringVar(&rulesPath, "rules", "", "operator rule file whose rules override the built-in ones (format of MAILGATE_BOUNCE_RULES)")
	return c
}

// loadBounceRules reads an operator rule file; "" means none.
func loadBounceRules(path string) ([]bounce.Rule, error) {
	if path == "" {
		return nil, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("bounce rules: %w", err)
	}
	return bounce.ParseRules(data)
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
