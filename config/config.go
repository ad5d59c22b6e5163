// Package config owns mailgate's configuration: the MAILGATE_* names the
// README lists, their defaults, an optional KEY=VALUE config file
// (MAILGATE_CONFIG_FILE; the environment wins over it) and the checks of
// production mode. It reads nothing itself: cmd hands it the environment.
package config

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"
)

// Config is every setting: its environment name (env tag), default
// (envDefault tag) and the description `mailgate help config` shows (help
// tag). Settings lists them from these same tags.
type Config struct {
	// Env is development (default) or production (strict checks).
	Env string `env:"MAILGATE_ENV" envDefault:"development" help:"development or production. production refuses to start without a master key, with a Redis that may evict or lose tasks, or with a tls=none relay, and sends only from verified sender domains; development warns about the master key and Redis instead, and sends from pending ones with a warning"`
	// DatabaseURL is postgres://… or sqlite:PATH.
	DatabaseURL string `env:"MAILGATE_DATABASE_URL" envDefault:"sqlite:./data/mailgate.db" help:"postgres://… or sqlite:PATH"`
	// RedisURL is redis://, rediss://, unix://, redis-sentinel:// or redis-cluster://.
	RedisURL string `env:"MAILGATE_REDIS_URL" envDefault:"redis://127.0.0.1:6379/0" help:"redis://, rediss://, unix://, redis-sentinel://[:pass@]h1:p,h2:p?master=NAME or redis-cluster://h1:p,h2:p"`
	// Listen is the API's address.
	Listen string `env:"MAILGATE_LISTEN" envDefault:"127.0.0.1:8080" help:"the API's address"`
	// MetricsListen is the health and metrics address of worker and poller.
	MetricsListen string `env:"MAILGATE_METRICS_LISTEN" envDefault:"127.0.0.1:9464" help:"/healthz, /readyz and /metrics of worker and poller (serve and api use the API's address)"`
	// Relays are the upstream SMTP relays, in failover order.
	Relays []string `env:"MAILGATE_RELAYS" envSeparator:"," help:"upstream SMTP relays in failover order, comma-separated: smtp://user:pass@host:587?tls=starttls&max_conns=10&rate=100/s or smtps://… (465); also max_messages, idle_timeout, auth, helo, name, provider (postmark, sendgrid, mailgun or none; default by the host's domain). Unset: messages are accepted and queued but not sent"`
	// Mailboxes are the bounce/reply mailboxes the poller reads.
	Mailboxes []string `env:"MAILGATE_MAILBOXES" envSeparator:"," help:"bounce and reply mailboxes the poller reads, comma-separated: imaps://, imap://, pop3s://, pop3:// (processed=FOLDER, delete=true)"`
	// ReturnPathDomain is the domain of the VERP envelope sender.
	ReturnPathDomain string `env:"MAILGATE_RETURN_PATH_DOMAIN" help:"domain of the VERP envelope sender b+TOKEN@DOMAIN; its MX must reach a mailbox the poller reads"`
	// MasterKeys are base64 32-byte keys; the first encrypts and signs.
	MasterKeys []string `env:"MAILGATE_MASTER_KEY" envSeparator:"," help:"standard base64 of 32 bytes; a comma-separated list rotates: the first encrypts and signs, all decrypt and verify. Unset in development: an ephemeral key"`
	// AllowedSenderDomains may send without registration (unsigned).
	AllowedSenderDomains []string `env:"MAILGATE_ALLOWED_SENDER_DOMAINS" envSeparator:"," help:"comma-separated sender domains allowed without registration (their mail goes out unsigned)"`
	// APIRateLimit is requests per second per key; 0 turns it off.
	APIRateLimit int `env:"MAILGATE_API_RATE_LIMIT" envDefault:"500" help:"API requests per second per key, shared across replicas; 0 turns the limit off"`
	// ConsoleEnabled serves the web console under /console (API role).
	ConsoleEnabled bool `env:"MAILGATE_CONSOLE_ENABLED" envDefault:"true" help:"serve the web console under /console on the API's address (sign in with an API key)"`
	// ConsoleIdleTimeout ends a console session unused for this long.
	ConsoleIdleTimeout time.Duration `env:"MAILGATE_CONSOLE_IDLE_TIMEOUT" envDefault:"30m" help:"a console session unused for this long ends"`
	// ConsoleSessionLifetime ends a console session this long after sign-in.
	ConsoleSessionLifetime time.Duration `env:"MAILGATE_CONSOLE_SESSION_LIFETIME" envDefault:"12h" help:"a console session ends this long after sign-in, used or not"`
	// ConsoleSecureCookies marks console cookies Secure on plain HTTP too.
	ConsoleSecureCookies bool `env:"MAILGATE_CONSOLE_SECURE_COOKIES" help:"mark the console's cookies Secure even on plain-HTTP requests (behind a TLS-terminating proxy); requests over TLS always get Secure cookies"`
	// ConsoleSignInRate bounds console sign-in attempts per client address.
	ConsoleSignInRate string `env:"MAILGATE_CONSOLE_SIGNIN_RATE" envDefault:"10/m" help:"console sign-in attempts per client address (N/s, N/m or N/h), shared across replicas; 0 turns the limit off"`
	// TrustedProxies are the CIDRs of reverse proxies whose
	// X-Forwarded-For header names the client.
	TrustedProxies []string `env:"MAILGATE_TRUSTED_PROXIES" envSeparator:"," help:"comma-separated CIDRs of reverse proxies in front of the API: from them, the client address (for the console's sign-in limit) is the nearest X-Forwarded-For address outside these networks. Unset: the connection's peer"`
	// WebhookAllowedNetworks are CIDRs exempt from the webhook SSRF guard.
	WebhookAllowedNetworks []string `env:"MAILGATE_WEBHOOK_ALLOWED_NETWORKS" envSeparator:"," help:"comma-separated CIDRs exempt from the webhook SSRF guard"`
	// WebhookAllowHTTP allows plain-http webhook URLs.
	WebhookAllowHTTP bool `env:"MAILGATE_WEBHOOK_ALLOW_HTTP" help:"allow plain-http webhook URLs"`
	// DNSServer is the resolver for domain verification (host:port).
	DNSServer string `env:"MAILGATE_DNS_SERVER" help:"host:port of the resolver domain verification asks; unset: the system resolver"`
	// DomainRecheckInterval is how often a verified sender domain's DKIM
	// record is looked up again; 0 turns the re-check off.
	DomainRecheckInterval time.Duration `env:"MAILGATE_DOMAIN_RECHECK_INTERVAL" envDefault:"24h" help:"how often the worker looks a verified sender domain's DKIM record up again (a domain whose record is gone becomes failed); 0 turns the re-check off"`
	// AutoMigrate applies migrations on start. Default true.
	AutoMigrate bool `env:"MAILGATE_AUTO_MIGRATE" envDefault:"true" help:"apply database migrations on start"`
	// LogLevel is debug, info (default), warn or error.
	LogLevel string `env:"MAILGATE_LOG_LEVEL" envDefault:"info" help:"debug, info, warn or error"`
	// LogFormat is text (default) or json.
	LogFormat string `env:"MAILGATE_LOG_FORMAT" envDefault:"text" help:"text or json"`
	// WorkerConcurrency is how many tasks a worker runs at once.
	WorkerConcurrency int `env:"MAILGATE_WORKER_CONCURRENCY" envDefault:"64" help:"tasks a worker runs at once (each mostly waits on the database or the relay)"`
	// ReconcileInterval is how often the reconciler looks for lost enqueues.
	ReconcileInterval time.Duration `env:"MAILGATE_RECONCILE_INTERVAL" envDefault:"1m" help:"how often the reconciler looks for messages whose enqueue was lost"`
	// ReconcileGrace is how long a queued message waits for its task, or a
	// started one past its next attempt's due time, before the reconciler
	// enqueues it again (worker.Config.ReconcileGrace).
	ReconcileGrace time.Duration `env:"MAILGATE_RECONCILE_GRACE" envDefault:"1m" help:"how long a message waits for its task before the reconciler enqueues it again (enqueueing a message whose task exists does nothing)"`
	// MaxRecipients and the other send limits (docs/architecture.md "Limits").
	MaxRecipients int `env:"MAILGATE_MAX_RECIPIENTS" envDefault:"50" help:"distinct recipients per message"`
	// MaxMessageBytes bounds text + html + decoded attachments.
	MaxMessageBytes int64 `env:"MAILGATE_MAX_MESSAGE_BYTES" envDefault:"26214400" help:"bytes of text, html and decoded attachments per message"`
	// HeloName is the name mailgate gives itself in EHLO (its FQDN).
	HeloName string `env:"MAILGATE_HELO_NAME" envDefault:"localhost" help:"the name given in EHLO; set the host's FQDN"`
	// RetryBase is the first retry delay after a temporary failure; it
	// doubles up to RetryMax.
	RetryBase time.Duration `env:"MAILGATE_RETRY_BASE" envDefault:"1m" help:"first retry delay after a temporary failure; it doubles up to MAILGATE_RETRY_MAX"`
	// RetryMax caps the retry delay.
	RetryMax time.Duration `env:"MAILGATE_RETRY_MAX" envDefault:"1h" help:"the longest retry delay"`
	// MaxQueueAge is how long a message may wait before it fails as expired.
	MaxQueueAge time.Duration `env:"MAILGATE_MAX_QUEUE_AGE" envDefault:"72h" help:"how long a message may wait before it fails as expired"`
	// RateSenderDomain limits sends per sender domain ("100/s"; "" off).
	RateSenderDomain string `env:"MAILGATE_RATE_SENDER_DOMAIN" help:"send rate per sender domain (100/s, 5000/h; several windows comma-separated, each holds); unset: off"`
	// RateKey limits sends per API key ("50/s"; "" off).
	RateKey string `env:"MAILGATE_RATE_KEY" help:"send rate per API key, as MAILGATE_RATE_SENDER_DOMAIN; unset: off"`
	// RateRecipientDomains overrides the per-recipient-domain limits:
	// "gmail.com=20/s;example.org=5/s;example.net=off".
	RateRecipientDomains string `env:"MAILGATE_RATE_RECIPIENT_DOMAINS" help:"send rates per recipient domain over the built-in table: gmail.com=20/s,3000/h;example.org=off"`
	// RateProviderDefaults applies the built-in limits of big mailbox
	// providers to their domains.
	RateProviderDefaults bool `env:"MAILGATE_RATE_PROVIDER_DEFAULTS" envDefault:"true" help:"apply the built-in limits of big mailbox providers to their domains"`
	// SoftBounceLimit is how many soft bounces in a row suppress an address.
	SoftBounceLimit int `env:"MAILGATE_SOFT_BOUNCE_LIMIT" envDefault:"3" help:"soft bounces in a row before an address is suppressed"`
	// BounceRules is the path of an operator rule file for the bounce
	// classifier ("" none); see bounce.ParseRules for the format.
	BounceRules string `env:"MAILGATE_BOUNCE_RULES" help:"path of a file of bounce classification rules overriding the built-in ones, one per line: PATTERN => REASON hard|soft [ID] (PATTERN a case-insensitive substring of the diagnostic) or status CODE => REASON hard|soft [ID] (the meaning of an RFC 3463 code, CODE 4.x.x, 5.x.x or X.x.x for both); # starts a comment; unset: built-in rules only"`
	// RetentionContent is the age after which a final message's stored
	// content (request, text, HTML) is deleted; 0 keeps it.
	RetentionContent time.Duration `env:"MAILGATE_RETENTION_CONTENT" envDefault:"1080h" help:"age (1080h = 45 days) after which the stored content (request, text, HTML) of a sent, failed, bounced, complained, suppressed, cancelled or partial message is deleted; the message, its recipients and events stay until MAILGATE_RETENTION_MESSAGES. 0 keeps it"`
	// RetentionMessages is the age after which a final message is deleted
	// with its recipients and events; 0 keeps it.
	RetentionMessages time.Duration `env:"MAILGATE_RETENTION_MESSAGES" envDefault:"2160h" help:"age (2160h = 90 days) after which a message in a final status is deleted with its recipients, tags, content and events; queued, scheduled, sending and deferred messages are never deleted. 0 keeps them"`
	// RetentionEvents is the age after which an event is deleted; 0 keeps it.
	RetentionEvents time.Duration `env:"MAILGATE_RETENTION_EVENTS" envDefault:"2160h" help:"age (2160h = 90 days) after which an event of the event log is deleted, also one whose message is still kept. 0 keeps them"`
	// RetentionInbound is the age after which inbound mail is deleted; 0
	// keeps it.
	RetentionInbound time.Duration `env:"MAILGATE_RETENTION_INBOUND" envDefault:"1080h" help:"age (1080h = 45 days) after which inbound mail (the report summary and raw head) is deleted; a POP3 mailbox without delete=true would then be read again. 0 keeps it"`
	// RetentionIdempotency is the age after which idempotency records are
	// deleted; 0 keeps them, else at least 24h (a key is honoured 24 hours).
	RetentionIdempotency time.Duration `env:"MAILGATE_RETENTION_IDEMPOTENCY" envDefault:"24h" help:"age after which Idempotency-Key records are deleted: at least 24h, the time a key is honoured. 0 keeps them. Suppressions are never deleted"`
}

// idempotencyHonoured is how long an Idempotency-Key is honoured
// (store.IdempotencyTTL); its records must be kept at least that long.
const idempotencyHonoured = 24 * time.Hour

// ConfigFileVar names the optional KEY=VALUE file Load reads first.
const ConfigFileVar = "MAILGATE_CONFIG_FILE"

// Setting is one variable Load reads, as `mailgate help config` lists it.
type Setting struct {
	// Name is the environment variable.
	Name string
	// Default is the value used when it is unset; "" for none.
	Default string
	// Help says what it sets.
	Help string
}

// Settings lists every variable Load reads: ConfigFileVar, then Config's
// fields in order, with the names and defaults the parser itself reads from
// their tags (env.GetFieldParams) and their help tags. Listing them from
// the parser's own definitions keeps the list from drifting.
func Settings() ([]Setting, error) {
	params, err := env.GetFieldParams(&Config{})
	if err != nil {
		return nil, fmt.Errorf("config tags: %w", err)
	}
	help := map[string]string{}
	t := reflect.TypeOf(Config{})
	for i := 0; i < t.NumField(); i++ {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("env"), ",")
		help[name] = t.Field(i).Tag.Get("help")
	}
	out := []Setting{{Name: ConfigFileVar,
		Help: "a file of KEY=VALUE lines (# starts a comment) read before the environment, which wins over it"}}
	for _, p := range params {
		out = append(out, Setting{Name: p.Key, Default: p.DefaultValue, Help: help[p.Key]})
	}
	return out, nil
}

// ErrInvalid wraps every configuration error.
var ErrInvalid = errors.New("invalid configuration")

// Load reads the configuration from environ ("KEY=VALUE" strings, as
// os.Environ gives), after the file named by MAILGATE_CONFIG_FILE if any.
func Load(environ []string) (Config, error) {
	vars := toMap(environ)
	if path := vars[ConfigFileVar]; path != "" {
		fileVars, err := readFile(path)
		if err != nil {
			return Config{}, err
		}
		for k, v := range fileVars {
			if _, set := vars[k]; !set {
				vars[k] = v
			}
		}
	}
	var c Config
	if err := env.ParseWithOptions(&c, env.Options{Environment: vars}); err != nil {
		return Config{}, fmt.Errorf("%w: %s", ErrInvalid, envNames(err.Error()))
	}
	c.normalise()
	return c, c.Check()
}

// envNames rewrites the struct field names in a parse error as the
// environment names the user set.
func envNames(msg string) string {
	t := reflect.TypeOf(Config{})
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("env"), ",")
		msg = strings.ReplaceAll(msg, `"`+f.Name+`"`, name)
	}
	return msg
}

func toMap(environ []string) map[string]string {
	m := make(map[string]string, len(environ))
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return m
}

// readFile reads KEY=VALUE lines; blank lines and # comments are skipped.
func readFile(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: read config file: %w", ErrInvalid, err)
	}
	m := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("%w: config file line %d: want KEY=VALUE", ErrInvalid, n)
		}
		m[strings.TrimSpace(k)] = strings.Trim(strings.TrimSpace(v), `"`)
	}
	return m, nil
}

func (c *Config) normalise() {
	for i, d := range c.AllowedSenderDomains {
		c.AllowedSenderDomains[i] = strings.ToLower(strings.TrimSpace(d))
	}
	c.Relays = trimAll(c.Relays)
	c.Mailboxes = trimAll(c.Mailboxes)
	c.MasterKeys = trimAll(c.MasterKeys)
}

func trimAll(in []string) []string {
	var out []string
	for _, s := range in {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// Production reports whether production mode is on.
func (c Config) Production() bool { return c.Env == "production" }

// Check validates values; in production mode it also refuses to run
// without a master key. Errors never contain secret values.
func (c Config) Check() error {
	if c.Env != "development" && c.Env != "production" {
		return fmt.Errorf("%w: MAILGATE_ENV must be development or production", ErrInvalid)
	}
	for i, k := range c.MasterKeys {
		b, err := base64.StdEncoding.DecodeString(k)
		if err != nil || len(b) != 32 {
			return fmt.Errorf("%w: MAILGATE_MASTER_KEY item %d must be standard base64 of 32 bytes", ErrInvalid, i+1)
		}
	}
	if c.Production() && len(c.MasterKeys) == 0 {
		return fmt.Errorf("%w: production mode needs MAILGATE_MASTER_KEY", ErrInvalid)
	}
	if c.Production() {
		for i, r := range c.Relays {
			if strings.Contains(r, "tls=none") {
				return fmt.Errorf("%w: MAILGATE_RELAYS item %d uses tls=none, refused in production mode", ErrInvalid, i+1)
			}
		}
	}
	if c.DomainRecheckInterval < 0 {
		return fmt.Errorf("%w: MAILGATE_DOMAIN_RECHECK_INTERVAL must be ≥ 0", ErrInvalid)
	}
	for _, r := range []struct {
		name string
		age  time.Duration
	}{{"MAILGATE_RETENTION_CONTENT", c.RetentionContent}, {"MAILGATE_RETENTION_MESSAGES", c.RetentionMessages},
		{"MAILGATE_RETENTION_EVENTS", c.RetentionEvents}, {"MAILGATE_RETENTION_INBOUND", c.RetentionInbound},
		{"MAILGATE_RETENTION_IDEMPOTENCY", c.RetentionIdempotency}} {
		if r.age < 0 {
			return fmt.Errorf("%w: %s must be ≥ 0", ErrInvalid, r.name)
		}
	}
	if c.RetentionIdempotency > 0 && c.RetentionIdempotency < idempotencyHonoured {
		return fmt.Errorf("%w: MAILGATE_RETENTION_IDEMPOTENCY must be 0 or at least 24h, the time a key is honoured", ErrInvalid)
	}
	if c.APIRateLimit < 0 {
		return fmt.Errorf("%w: MAILGATE_API_RATE_LIMIT must be ≥ 0", ErrInvalid)
	}
	if c.ConsoleIdleTimeout <= 0 || c.ConsoleSessionLifetime <= 0 {
		return fmt.Errorf("%w: MAILGATE_CONSOLE_IDLE_TIMEOUT and MAILGATE_CONSOLE_SESSION_LIFETIME must be > 0", ErrInvalid)
	}
	return nil
}
