package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mailgate/mailgate/config"
)

// configNote ends the help of every command that reads the configuration.
const configNote = "Configured by MAILGATE_* environment variables (and the optional file named by\n" +
	"MAILGATE_CONFIG_FILE): `mailgate help config` lists them with their defaults."

// commandSettings are the variables cmd reads itself, apart from the
// configuration package's.
var commandSettings = []config.Setting{
	{Name: apiURLVar, Default: "http:// + MAILGATE_LISTEN",
		Help: "the gateway API the domains commands call (--api-url)"},
	{Name: apiKeyVar, Help: "the API key, with the domains scope, the domains commands send (--api-key)"},
	{Name: pprofListenVar, Help: "a loopback address on which any mailgate command serves Go's pprof (profiling); unset: off"},
}

// configTopic is `mailgate help config`: every setting with its default,
// listed from the configuration parser's own definitions.
func configTopic() (*cobra.Command, error) {
	settings, err := config.Settings()
	if err != nil {
		return nil, err
	}
	var b strings.Builder
	writeWrapped(&b, "", "mailgate reads its settings from MAILGATE_* environment variables. The server "+
		"commands (serve, api, worker, poller) and the database commands (migrate, projects, keys) read "+
		"all of them.", 78)
	b.WriteString("\n")
	writeSettings(&b, settings)
	b.WriteString("\nRead apart from that configuration:\n\n")
	writeSettings(&b, commandSettings)
	return &cobra.Command{
		Use:   "config",
		Short: "Every MAILGATE_* setting and its default",
		Long:  strings.TrimRight(b.String(), "\n"),
	}, nil
}

// writeSettings writes one entry a setting: its name and default, then
// what it sets, indented.
func writeSettings(b *strings.Builder, settings []config.Setting) {
	for _, s := range settings {
		def := s.Default
		if def == "" {
			def = "unset"
		}
		fmt.Fprintf(b, "  %s (default: %s)\n", s.Name, def)
		writeWrapped(b, "      ", s.Help, 78)
	}
}

// writeWrapped writes text in lines of at most width columns (longer
// words stand alone), each starting with indent.
func writeWrapped(b *strings.Builder, indent, text string, width int) {
	line := indent
	for _, w := range strings.Fields(text) {
		if line != indent && len(line)+1+len(w) > width {
			b.WriteString(line + "\n")
			line = indent
		}
		if line != indent {
			line += " "
		}
		line += w
	}
	b.WriteString(line + "\n")
}
