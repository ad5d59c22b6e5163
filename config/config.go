// Package config owns mailgate's configuration: the MAILGATE_* names of
// DESIGN.md, their defaults, an optional KEY=VALUE config file
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

// Config is every setting, with its environment name and default.
type Config struct {
	// Env is development (default) or production (strict checks).
	Env string `env:"MAILGATE_ENV" envDefault:"development"`
	// DatabaseURL is postgres://… or sqlite:PATH.
	DatabaseURL string `env:"MAILGATE_DATABASE_URL" envDefault:"sqlite:./data/mailgate.db"`
	// RedisURL is redis://, rediss://, unix://, redis-sentinel:// or redis-cluster://.
	RedisURL string `env:"MAILGATE_REDIS_URL" envDefault:"redis://127.0.0.1:6379/0"`
	// Listen is the API's address.
	Listen string `env:"MAILGATE_LISTEN" envDefault:"127.0.0.1:8080"`
	// MetricsListen is the health and metrics address of worker and poller.
	MetricsListen string `env:"MAILGATE_METRICS_LISTEN" envDefault:"127.0.0.1:9464"`
	// Relays are the upstream SMTP relays, in failover order.
	Relays []string `env:"MAILGATE_RELAYS" envSeparator:","`
	// Mailboxes are the bounce/reply mailboxes the poller reads.
	Mailboxes []string `env:"MAILGATE_MAILBOXES" envSeparator:","`
	// ReturnPathDomain is the domain of the VERP envelope sender.
	ReturnPathDomain string `env:"MAILGATE_RETURN_PATH_DOMAIN"`
	// MasterKeys are base64 32-byte keys; the first encrypts and signs.
	MasterKeys []string `env:"MAILGATE_MASTER_KEY" envSeparator:","`
	// AllowedSenderDomains may send without registration (unsigned).
	AllowedSenderDomains []string `env:"MAILGATE_ALLOWED_SENDER_DOMAINS" envSeparator:","`
	// APIRateLimit is requests per second per key; 0 turns it off.
	APIRateLimit int `env:"MAILGATE_API_RATE_LIMIT" envDefault:"500"`
	// WebhookAllowedNetworks are CIDRs exempt from the webhook SSRF guard.
	WebhookAllowedNetworks []string `env:"MAILGATE_WEBHOOK_ALLOWED_NETWORKS" envSeparator:","`
	// WebhookAllowHTTP allows plain-http webhook URLs.
	WebhookAllowHTTP bool `env:"MAILGATE_WEBHOOK_ALLOW_HTTP"`
	// DNSServer is the resolver for domain verification (host:port).
	DNSServer string `env:"MAILGATE_DNS_SERVER"`
	// AutoMigrate applies migrations on start. Default true.
	AutoMigrate bool `env:"MAILGATE_AUTO_MIGRATE" envDefault:"true"`
	// LogLevel is debug, info (default), warn or error.
	LogLevel string `env:"MAILGATE_LOG_LEVEL" envDefault:"info"`
	// LogFormat is text (default) or json.
	LogFormat string `env:"MAILGATE_LOG_FORMAT" envDefault:"text"`
	// WorkerConcurrency is how many tasks a worker runs at once.
	WorkerConcurrency int `env:"MAILGATE_WORKER_CONCURRENCY" envDefault:"64"`
	// ReconcileInterval is how often the reconciler looks for lost enqueues.
	ReconcileInterval time.Duration `env:"MAILGATE_RECONCILE_INTERVAL" envDefault:"1m"`
	// MaxRecipients and the other send limits (DESIGN.md "Limits").
	MaxRecipients int `env:"MAILGATE_MAX_RECIPIENTS" envDefault:"50"`
	// MaxMessageBytes bounds text + html + decoded attachments.
	MaxMessageBytes int64 `env:"MAILGATE_MAX_MESSAGE_BYTES" envDefault:"26214400"`
	// HeloName is the name mailgate gives itself in EHLO (its FQDN).
	HeloName string `env:"MAILGATE_HELO_NAME" envDefault:"localhost"`
	// RetryBase is the first retry delay after a temporary failure; it
	// doubles up to RetryMax.
	RetryBase time.Duration `env:"MAILGATE_RETRY_BASE" envDefault:"1m"`
	// RetryMax caps the retry delay.
	RetryMax time.Duration `env:"MAILGATE_RETRY_MAX" envDefault:"1h"`
	// MaxQueueAge is how long a message may wait before it fails as expired.
	MaxQueueAge time.Duration `env:"MAILGATE_MAX_QUEUE_AGE" envDefault:"72h"`
	// RateSenderDomain limits sends per sender domain ("100/s"; "" off).
	RateSenderDomain string `env:"MAILGATE_RATE_SENDER_DOMAIN"`
	// RateKey limits sends per API key ("50/s"; "" off).
	RateKey string `env:"MAILGATE_RATE_KEY"`
	// RateRecipientDomains overrides the per-recipient-domain limits:
	// "gmail.com=20/s;example.org=5/s;example.net=off".
	RateRecipientDomains string `env:"MAILGATE_RATE_RECIPIENT_DOMAINS"`
	// RateProviderDefaults applies the built-in limits of big mailbox
	// providers to their domains.
	RateProviderDefaults bool `env:"MAILGATE_RATE_PROVIDER_DEFAULTS" envDefault:"true"`
	// SoftBounceLimit is how many soft bounces in a row suppress an address.
	SoftBounceLimit int `env:"MAILGATE_SOFT_BOUNCE_LIMIT" envDefault:"3"`
}

// ErrInvalid wraps every configuration error.
var ErrInvalid = errors.New("invalid configuration")

// Load reads the configuration from environ ("KEY=VALUE" strings, as
// os.Environ gives), after the file named by MAILGATE_CONFIG_FILE if any.
func Load(environ []string) (Config, error) {
	vars := toMap(environ)
	if path := vars["MAILGATE_CONFIG_FILE"]; path != "" {
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
	if c.APIRateLimit < 0 {
		return fmt.Errorf("%w: MAILGATE_API_RATE_LIMIT must be ≥ 0", ErrInvalid)
	}
	return nil
}
