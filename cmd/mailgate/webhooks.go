package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

// The webhooks commands are, like the domains commands, a client of a
// running gateway's /v1/webhooks API: the secrets are sealed by the
// server's master key, and the API's checks (the SSRF guard) apply. They
// need an API key with the webhooks scope. Answers are printed as the
// API's JSON, but for list and deliveries, which print tables unless
// --json.

func webhooksCmd() *cobra.Command {
	dc := &domainsClient{http: &http.Client{Timeout: 30 * time.Second}}
	cmd := &cobra.Command{
		Use:   "webhooks",
		Short: "Manage webhook endpoints through a running gateway's API (needs a key with the webhooks scope)",
		Long: "Manage webhook endpoints through a running gateway's API (needs a key with the webhooks scope).\n\n" +
			"--api-url and --api-key default to MAILGATE_API_URL and MAILGATE_API_KEY: see `mailgate help config`.",
		PersistentPreRunE: func(*cobra.Command, []string) error {
			if dc.key == "" {
				dc.key = os.Getenv(apiKeyVar)
			}
			if dc.key == "" {
				return errors.New("webhooks needs an API key with the webhooks scope: --api-key or MAILGATE_API_KEY")
			}
			dc.base = strings.TrimSuffix(dc.base, "/")
			return nil
		},
	}
	f := cmd.PersistentFlags()
	f.StringVar(&dc.base, "api-url", defaultAPIURL(), "the gateway's API (default MAILGATE_API_URL, else http:// + MAILGATE_LISTEN)")
	f.StringVar(&dc.key, "api-key", "", "API key with the webhooks scope (default: MAILGATE_API_KEY)")
	f.BoolVar(&dc.json, "json", false, "print the API's JSON answer")
	cmd.AddCommand(webhookCreateCmd(dc), webhookListCmd(dc), webhookShowCmd(dc), webhookUpdateCmd(dc),
		webhookDeleteCmd(dc), webhookActionCmd(dc, "rotate-secret", "Make a new signing secret (old and new sign for 24 hours)"),
		webhookActionCmd(dc, "test", "Send a test event (see it in deliveries)"), webhookDeliveriesCmd(dc),
		webhookRetryCmd(dc), webhookReplayCmd(dc))
	return cmd
}

// webhookPath is /v1/webhooks/{id} and more.
func webhookPath(id string, more ...string) string {
	return "/v1/webhooks/" + url.PathEscape(id) + strings.Join(more, "")
}

// filterFlags adds --events, --tags and --description to c.
func filterFlags(c *cobra.Command, events, tags *[]string, description *string) {
	c.Flags().StringSliceVar(events, "events", nil, "event types, comma-separated (default every type)")
	c.Flags().StringSliceVar(tags, "tags", nil, "only events of messages with one of these tags, comma-separated")
	c.Flags().StringVar(description, "description", "", "what the endpoint is for")
}

func webhookCreateCmd(dc *domainsClient) *cobra.Command {
	var events, tags []string
	var description string
	var disabled bool
	c := &cobra.Command{Use: "create URL", Aliases: []string{"add"}, Args: cobra.ExactArgs(1),
		Short: "Add an endpoint; prints its signing secret (whsec_…), shown only now",
		RunE: func(c *cobra.Command, args []string) error {
			req := map[string]any{"url": args[0], "enabled": !disabled}
			if len(events) > 0 {
				req["events"] = events
			}
			if len(tags) > 0 {
				req["tags"] = tags
			}
			if description != "" {
				req["description"] = description
			}
			body, err := dc.do(c.Context(), http.MethodPost, "/v1/webhooks", req)
			return dc.raw(c, body, err)
		}}
	filterFlags(c, &events, &tags, &description)
	c.Flags().BoolVar(&disabled, "disabled", false, "create it disabled")
	return c
}

func webhookUpdateCmd(dc *domainsClient) *cobra.Command {
	var events, tags []string
	var description, target string
	var enable, disable bool
	c := &cobra.Command{Use: "update ID", Args: cobra.ExactArgs(1),
		Short: "Change an endpoint's URL, filters, description, or enable or disable it",
		RunE: func(c *cobra.Command, args []string) error {
			req := map[string]any{}
			fl := c.Flags()
			if fl.Changed("url") {
				req["url"] = target
			}
			if fl.Changed("events") {
				req["events"] = events
			}
			if fl.Changed("tags") {
				req["tags"] = tags
			}
			if fl.Changed("description") {
				req["description"] = description
			}
			if enable || disable {
				req["enabled"] = enable
			}
			body, err := dc.do(c.Context(), http.MethodPatch, webhookPath(args[0]), req)
			return dc.raw(c, body, err)
		}}
	filterFlags(c, &events, &tags, &description)
	c.Flags().StringVar(&target, "url", "", "the endpoint's new URL")
	c.Flags().BoolVar(&enable, "enable", false, "enable it (its waiting deliveries go out again)")
	c.Flags().BoolVar(&disable, "disable", false, "disable it")
	c.MarkFlagsMutuallyExclusive("enable", "disable")
	return c
}

func webhookShowCmd(dc *domainsClient) *cobra.Command {
	return &cobra.Command{Use: "show ID", Args: cobra.ExactArgs(1), Short: "Print an endpoint",
		RunE: func(c *cobra.Command, args []string) error {
			body, err := dc.do(c.Context(), http.MethodGet, webhookPath(args[0]), nil)
			return dc.raw(c, body, err)
		}}
}

func webhookDeleteCmd(dc *domainsClient) *cobra.Command {
	return &cobra.Command{Use: "delete ID", Args: cobra.ExactArgs(1), Short: "Delete an endpoint and its delivery log",
		RunE: func(c *cobra.Command, args []string) error {
			if _, err := dc.do(c.Context(), http.MethodDelete, webhookPath(args[0]), nil); err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "deleted webhook %s\n", args[0])
			return nil
		}}
}

// webhookActionCmd is a POST /v1/webhooks/{id}/<name> without a body.
func webhookActionCmd(dc *domainsClient, name, short string) *cobra.Command {
	return &cobra.Command{Use: name + " ID", Args: cobra.ExactArgs(1), Short: short,
		RunE: func(c *cobra.Command, args []string) error {
			body, err := dc.do(c.Context(), http.MethodPost, webhookPath(args[0], "/", name), nil)
			return dc.raw(c, body, err)
		}}
}

func webhookRetryCmd(dc *domainsClient) *cobra.Command {
	return &cobra.Command{Use: "retry ID DELIVERY_ID", Args: cobra.ExactArgs(2),
		Short: "Try a delivery again now (same webhook-id)",
		RunE: func(c *cobra.Command, args []string) error {
			body, err := dc.do(c.Context(), http.MethodPost,
				webhookPath(args[0], "/deliveries/", url.PathEscape(args[1]), "/retry"), nil)
			return dc.raw(c, body, err)
		}}
}

func webhookReplayCmd(dc *domainsClient) *cobra.Command {
	var since, until string
	c := &cobra.Command{Use: "replay ID --since TIME --until TIME", Args: cobra.ExactArgs(1),
		Short: "Send the events of a time range (RFC 3339) again",
		RunE: func(c *cobra.Command, args []string) error {
			body, err := dc.do(c.Context(), http.MethodPost, webhookPath(args[0], "/replay"),
				map[string]string{"since": since, "until": until})
			return dc.raw(c, body, err)
		}}
	c.Flags().StringVar(&since, "since", "", "start of the range, e.g. 2026-12-01T00:00:00Z")
	c.Flags().StringVar(&until, "until", "", "end of the range (excluded)")
	_ = c.MarkFlagRequired("since")
	_ = c.MarkFlagRequired("until")
	return c
}

func webhookListCmd(dc *domainsClient) *cobra.Command {
	return &cobra.Command{Use: "list", Args: cobra.NoArgs, Short: "List the project's endpoints",
		RunE: func(c *cobra.Command, _ []string) error {
			body, err := dc.do(c.Context(), http.MethodGet, "/v1/webhooks", nil)
			if err != nil || dc.json {
				return dc.raw(c, body, err)
			}
			var list struct {
				Data []struct {
					ID             string   `json:"id"`
					URL            string   `json:"url"`
					Events         []string `json:"events"`
					Enabled        bool     `json:"enabled"`
					DisabledReason string   `json:"disabled_reason"`
				} `json:"data"`
			}
			if err := json.Unmarshal(body, &list); err != nil {
				return fmt.Errorf("decode the API's answer: %w", err)
			}
			tw := tabwriter.NewWriter(c.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tURL\tEVENTS\tENABLED")
			for _, w := range list.Data {
				events := strings.Join(w.Events, ",")
				if events == "" {
					events = "all"
				}
				enabled := fmt.Sprint(w.Enabled)
				if w.DisabledReason != "" {
					enabled += " (" + w.DisabledReason + ")"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", w.ID, w.URL, events, enabled)
			}
			return tw.Flush()
		}}
}

func webhookDeliveriesCmd(dc *domainsClient) *cobra.Command {
	var status string
	c := &cobra.Command{Use: "deliveries ID", Args: cobra.ExactArgs(1), Short: "Print an endpoint's delivery log, newest first",
		RunE: func(c *cobra.Command, args []string) error {
			path := webhookPath(args[0], "/deliveries")
			if status != "" {
				path += "?status=" + url.QueryEscape(status)
			}
			body, err := dc.do(c.Context(), http.MethodGet, path, nil)
			if err != nil || dc.json {
				return dc.raw(c, body, err)
			}
			var page struct {
				Data []struct {
					ID            string  `json:"id"`
					Status        string  `json:"status"`
					Attempts      int     `json:"attempts"`
					ResponseCode  *int    `json:"response_code"`
					NextAttemptAt *string `json:"next_attempt_at"`
					Error         string  `json:"error"`
				} `json:"data"`
			}
			if err := json.Unmarshal(body, &page); err != nil {
				return fmt.Errorf("decode the API's answer: %w", err)
			}
			tw := tabwriter.NewWriter(c.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "WEBHOOK-ID\tSTATUS\tATTEMPTS\tCODE\tNEXT ATTEMPT\tERROR")
			for _, d := range page.Data {
				code, next := "-", "-"
				if d.ResponseCode != nil {
					code = fmt.Sprint(*d.ResponseCode)
				}
				if d.NextAttemptAt != nil {
					next = *d.NextAttemptAt
				}
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", d.ID, d.Status, d.Attempts, code, next, d.Error)
			}
			return tw.Flush()
		}}
	c.Flags().StringVar(&status, "status", "", "only pending, delivered, failed or exhausted deliveries")
	return c
}
