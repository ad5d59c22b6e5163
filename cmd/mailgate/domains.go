package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/mailgate/mailgate/internal/redact"
)

// The domains commands are a client of a running gateway's /v1/domains
// API, not of the database: the DKIM keys they make are sealed by the
// server's MAILGATE_MASTER_KEY (under `make run`, an ephemeral one only the
// running server holds), and the API's validation and answers apply as
// they are. They need an API key with the domains scope.

// apiURLVar and apiKeyVar name the domains commands' defaults of --api-url
// and --api-key.
const (
	apiURLVar = "MAILGATE_API_URL"
	apiKeyVar = "MAILGATE_API_KEY"
)

// domainsClient talks to /v1/domains.
type domainsClient struct {
	base, key string
	http      *http.Client
	json      bool // print the API's JSON instead of tables
}

func domainsCmd() *cobra.Command {
	dc := &domainsClient{http: &http.Client{Timeout: 30 * time.Second}}
	cmd := &cobra.Command{
		Use:   "domains",
		Short: "Manage sender domains through a running gateway's API (needs a key with the domains scope)",
		Long: "Manage sender domains through a running gateway's API (needs a key with the domains scope).\n\n" +
			"--api-url and --api-key default to MAILGATE_API_URL and MAILGATE_API_KEY: see `mailgate help config`.",
		PersistentPreRunE: func(*cobra.Command, []string) error {
			if dc.key == "" {
				dc.key = os.Getenv(apiKeyVar)
			}
			if dc.key == "" {
				return errors.New("domains needs an API key with the domains scope: --api-key or MAILGATE_API_KEY")
			}
			dc.base = strings.TrimSuffix(dc.base, "/")
			return nil
		},
	}
	f := cmd.PersistentFlags()
	f.StringVar(&dc.base, "api-url", defaultAPIURL(), "the gateway's API (default MAILGATE_API_URL, else http:// + MAILGATE_LISTEN)")
	// No default shown: help would print the key.
	f.StringVar(&dc.key, "api-key", "", "API key with the domains scope (default: MAILGATE_API_KEY)")
	f.BoolVar(&dc.json, "json", false, "print the API's JSON answer")
	cmd.AddCommand(dc.createCmd(), dc.listCmd(), dc.showCmd(), dc.verifyCmd(), dc.rotateCmd(), dc.deleteCmd())
	return cmd
}

// defaultAPIURL is MAILGATE_API_URL, else the API's own listen address.
func defaultAPIURL() string {
	if u := os.Getenv(apiURLVar); u != "" {
		return u
	}
	if l := os.Getenv("MAILGATE_LISTEN"); l != "" {
		return "http://" + l
	}
	return "http://127.0.0.1:8080"
}

// domainOut is the API's Domain.
type domainOut struct {
	Name      string `json:"name"`
	Status    string `json:"status"`
	CreatedAt string `json:"created_at"`
	DKIM      []struct {
		Selector  string  `json:"selector"`
		Algorithm string  `json:"algorithm"`
		RetiredAt *string `json:"retired_at"`
	} `json:"dkim"`
	DNSRecords []struct {
		Type  string `json:"type"`
		Name  string `json:"name"`
		Value string `json:"value"`
	} `json:"dns_records"`
}

// verificationOut is the API's DomainVerification.
type verificationOut struct {
	Name     string           `json:"name"`
	Status   string           `json:"status"`
	Verified bool             `json:"verified"`
	Records  []recordCheckOut `json:"records"`
}

// recordCheckOut is the API's DNSCheck.
type recordCheckOut struct {
	Type   string   `json:"type"`
	Name   string   `json:"name"`
	Value  string   `json:"value"`
	Status string   `json:"status"`
	Found  []string `json:"found"`
	Error  string   `json:"error"`
	OK     bool     `json:"ok"`
}

func (dc *domainsClient) createCmd() *cobra.Command {
	var algorithms []string
	var selector string
	c := &cobra.Command{Use: "create NAME", Aliases: []string{"add"}, Args: cobra.ExactArgs(1),
		Short: "Register a sender domain: generate its DKIM keys and print the DNS records to publish",
		RunE: func(c *cobra.Command, args []string) error {
			req := map[string]any{"name": args[0]}
			if len(algorithms) > 0 || selector != "" {
				dkim := map[string]any{}
				if len(algorithms) > 0 {
					dkim["algorithms"] = algorithms
				}
				if selector != "" {
					dkim["selector"] = selector
				}
				req["dkim"] = dkim
			}
			return dc.printDomain(c, http.MethodPost, "/v1/domains", req)
		}}
	c.Flags().StringSliceVar(&algorithms, "algorithms", nil, "DKIM algorithms, comma-separated: rsa, ed25519 (default both: dual signing)")
	c.Flags().StringVar(&selector, "selector", "", "DKIM selector base (default mg + year and month)")
	return c
}

func (dc *domainsClient) showCmd() *cobra.Command {
	return &cobra.Command{Use: "show NAME", Args: cobra.ExactArgs(1),
		Short: "Print a domain, its DKIM keys and the DNS records to publish",
		RunE: func(c *cobra.Command, args []string) error {
			return dc.printDomain(c, http.MethodGet, "/v1/domains/"+url.PathEscape(args[0]), nil)
		}}
}

func (dc *domainsClient) rotateCmd() *cobra.Command {
	return &cobra.Command{Use: "rotate NAME", Args: cobra.ExactArgs(1),
		Short: "Add a new DKIM selector (mail is signed with old and new until the old is retired)",
		RunE: func(c *cobra.Command, args []string) error {
			return dc.printDomain(c, http.MethodPost, "/v1/domains/"+url.PathEscape(args[0])+"/dkim/rotate", nil)
		}}
}

func (dc *domainsClient) deleteCmd() *cobra.Command {
	return &cobra.Command{Use: "delete NAME", Args: cobra.ExactArgs(1),
		Short: "Delete a domain and its keys",
		RunE: func(c *cobra.Command, args []string) error {
			if _, err := dc.do(c.Context(), http.MethodDelete, "/v1/domains/"+url.PathEscape(args[0]), nil); err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "deleted domain %s and its DKIM keys\n", args[0])
			return nil
		}}
}

func (dc *domainsClient) listCmd() *cobra.Command {
	return &cobra.Command{Use: "list", Args: cobra.NoArgs, Short: "List the project's domains",
		RunE: func(c *cobra.Command, _ []string) error {
			body, err := dc.do(c.Context(), http.MethodGet, "/v1/domains", nil)
			if err != nil || dc.json {
				return dc.raw(c, body, err)
			}
			var list struct {
				Data []domainOut `json:"data"`
			}
			if err := json.Unmarshal(body, &list); err != nil {
				return fmt.Errorf("decode the API's answer: %w", err)
			}
			tw := tabwriter.NewWriter(c.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tSTATUS\tCREATED\tSELECTORS")
			for _, d := range list.Data {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", d.Name, d.Status, d.CreatedAt, activeSelectors(d))
			}
			return tw.Flush()
		}}
}

func (dc *domainsClient) verifyCmd() *cobra.Command {
	return &cobra.Command{Use: "verify NAME", Args: cobra.ExactArgs(1),
		Short: "Look the domain's records up in DNS and report each; fails unless all are right",
		RunE: func(c *cobra.Command, args []string) error {
			body, err := dc.do(c.Context(), http.MethodPost, "/v1/domains/"+url.PathEscape(args[0])+"/verify", nil)
			var v verificationOut
			if err == nil {
				err = json.Unmarshal(body, &v)
			}
			if err != nil || dc.json {
				if rerr := dc.raw(c, body, err); rerr != nil {
					return rerr
				}
			} else {
				printVerification(c.OutOrStdout(), v)
			}
			if !v.Verified {
				return notVerified(args[0], v)
			}
			return nil
		}}
}

// printVerification prints one line per record: OK; WRONG when DNS holds
// records that do not do the job; MISSING when DNS says there is none;
// LOOKUP FAILED, with the resolver's error, when DNS did not answer.
func printVerification(w io.Writer, v verificationOut) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STATE\tTYPE\tNAME\tEXPECTED\tFOUND")
	for _, r := range v.Records {
		state, found := "OK", strings.Join(r.Found, " | ")
		switch {
		case r.Status == "error":
			state, found = "LOOKUP FAILED", r.Error
		case r.Status == "missing":
			state = "MISSING"
		case !r.OK:
			state = "WRONG"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", state, r.Type, r.Name, r.Value, found)
	}
	tw.Flush()
	fmt.Fprintf(w, "\n%s is %s (a DKIM record found verifies it; production mode sends only from verified domains)\n", v.Name, v.Status)
}

// notVerified says what to do about the records that are not OK: publish
// the missing and wrong ones, try again those whose lookup failed.
func notVerified(name string, v verificationOut) error {
	failed, unpublished := 0, 0
	for _, r := range v.Records {
		switch {
		case r.Status == "error":
			failed++
		case !r.OK:
			unpublished++
		}
	}
	var todo []string
	if unpublished > 0 {
		todo = append(todo, "publish the records marked MISSING or WRONG")
	}
	if failed > 0 {
		todo = append(todo, fmt.Sprintf("the DNS lookup failed for %d of %d records: try again once the resolver answers", failed, len(v.Records)))
	}
	if len(todo) == 0 {
		todo = append(todo, "no records to check")
	}
	return fmt.Errorf("%s is not verified: %s", name, strings.Join(todo, "; "))
}

// printDomain sends a request answered by a Domain and prints it.
func (dc *domainsClient) printDomain(c *cobra.Command, method, path string, req any) error {
	body, err := dc.do(c.Context(), method, path, req)
	if err != nil || dc.json {
		return dc.raw(c, body, err)
	}
	var d domainOut
	if err := json.Unmarshal(body, &d); err != nil {
		return fmt.Errorf("decode the API's answer: %w", err)
	}
	out := c.OutOrStdout()
	fmt.Fprintf(out, "%s (%s, created %s), DKIM selectors: %s\n\nPublish:\n", d.Name, d.Status, d.CreatedAt, activeSelectors(d))
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TYPE\tNAME\tVALUE")
	for _, r := range d.DNSRecords {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Type, r.Name, r.Value)
	}
	return tw.Flush()
}

// activeSelectors lists the selectors that sign, with their algorithms.
func activeSelectors(d domainOut) string {
	var out []string
	for _, k := range d.DKIM {
		if k.RetiredAt == nil {
			out = append(out, k.Selector+" ("+k.Algorithm+")")
		}
	}
	return strings.Join(out, ", ")
}

// raw prints an answer as the API gave it (indented), or passes err on.
func (dc *domainsClient) raw(c *cobra.Command, body []byte, err error) error {
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if json.Indent(&buf, body, "", "  ") != nil {
		buf.Reset()
		buf.Write(body)
	}
	fmt.Fprintln(c.OutOrStdout(), buf.String())
	return nil
}

// do sends one request and returns the body of a 2xx answer; any other
// answer is an error carrying the problem's title, detail and fields.
func (dc *domainsClient) do(ctx context.Context, method, path string, req any) ([]byte, error) {
	var body io.Reader
	if req != nil {
		b, err := json.Marshal(req)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	r, err := http.NewRequestWithContext(ctx, method, dc.base+path, body)
	if err != nil {
		return nil, fmt.Errorf("API request: bad --api-url %s", redact.URL(dc.base))
	}
	r.Header.Set("Authorization", "Bearer "+dc.key)
	if req != nil {
		r.Header.Set("Content-Type", "application/json")
	}
	resp, err := dc.http.Do(r)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // its message repeats the URL, credentials included
		}
		return nil, fmt.Errorf("API at %s: %w", redact.URL(dc.base), err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, fmt.Errorf("read the API's answer: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		return nil, problemError(resp.StatusCode, b)
	}
	return b, nil
}

// problemError turns an RFC 9457 problem answer into one error line.
func problemError(status int, body []byte) error {
	var p struct {
		Title  string `json:"title"`
		Detail string `json:"detail"`
		Errors []struct {
			Field   string `json:"field"`
			Message string `json:"message"`
		} `json:"errors"`
	}
	if json.Unmarshal(body, &p) != nil || p.Title == "" {
		return fmt.Errorf("API answered %d: %s", status, strings.TrimSpace(string(body)))
	}
	msg := fmt.Sprintf("API answered %d %s", status, p.Title)
	if p.Detail != "" {
		msg += ": " + p.Detail
	}
	for _, fe := range p.Errors {
		msg += fmt.Sprintf("; %s: %s", fe.Field, fe.Message)
	}
	return errors.New(msg)
}
