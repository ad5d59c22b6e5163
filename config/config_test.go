package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestLoadDefaults(t *testing.T) {
	c, err := Load(nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.DatabaseURL != "sqlite:./data/mailgate.db" || c.Listen != "127.0.0.1:8080" || c.APIRateLimit != 500 ||
		c.Env != "development" || !c.AutoMigrate || c.RetryBase != time.Minute || c.MaxQueueAge != 72*time.Hour ||
		c.DomainRecheckInterval != 24*time.Hour ||
		c.RetentionContent != 45*24*time.Hour || c.RetentionMessages != 90*24*time.Hour ||
		c.RetentionEvents != 90*24*time.Hour || c.RetentionInbound != 45*24*time.Hour ||
		c.RetentionIdempotency != 24*time.Hour {
		t.Fatalf("defaults wrong: %+v", c)
	}
}

func TestLoadEnvironmentAndFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "mailgate.env")
	content := "# comment\nMAILGATE_LISTEN=127.0.0.1:9000\nMAILGATE_API_RATE_LIMIT=\"7\"\n"
	if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load([]string{"MAILGATE_CONFIG_FILE=" + file, "MAILGATE_API_RATE_LIMIT=9",
		"MAILGATE_ALLOWED_SENDER_DOMAINS= Shop.Example , b.example", "MAILGATE_RELAYS=smtp://a:25?tls=none,smtp://b:25"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:9000" {
		t.Fatalf("file value not used: %s", c.Listen)
	}
	if c.APIRateLimit != 9 {
		t.Fatalf("environment must win over the file: %d", c.APIRateLimit)
	}
	if strings.Join(c.AllowedSenderDomains, ",") != "shop.example,b.example" || len(c.Relays) != 2 {
		t.Fatalf("lists not normalised: %v %v", c.AllowedSenderDomains, c.Relays)
	}
}

func TestCheckRefuses(t *testing.T) {
	key := "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
	tests := []struct {
		name string
		env  []string
		want string
	}{
		{"bad env", []string{"MAILGATE_ENV=staging"}, "MAILGATE_ENV"},
		{"production without master key", []string{"MAILGATE_ENV=production"}, "MAILGATE_MASTER_KEY"},
		{"short master key", []string{"MAILGATE_MASTER_KEY=c2hvcnQ="}, "item 1"},
		{"production tls=none", []string{"MAILGATE_ENV=production", "MAILGATE_MASTER_KEY=" + key,
			"MAILGATE_RELAYS=smtp://127.0.0.1:25?tls=none"}, "tls=none"},
		{"negative rate", []string{"MAILGATE_API_RATE_LIMIT=-1"}, "RATE_LIMIT"},
		{"negative re-check interval", []string{"MAILGATE_DOMAIN_RECHECK_INTERVAL=-1h"}, "MAILGATE_DOMAIN_RECHECK_INTERVAL"},
		{"not a number", []string{"MAILGATE_API_RATE_LIMIT=many"}, "MAILGATE_API_RATE_LIMIT"},
		{"negative retention", []string{"MAILGATE_RETENTION_EVENTS=-1h"}, "MAILGATE_RETENTION_EVENTS"},
		{"retention not a duration", []string{"MAILGATE_RETENTION_CONTENT=45d"}, "MAILGATE_RETENTION_CONTENT"},
		{"idempotency records kept less than honoured", []string{"MAILGATE_RETENTION_IDEMPOTENCY=1h"},
			"MAILGATE_RETENTION_IDEMPOTENCY"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(tt.env)
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Load = %v, want ErrInvalid naming %s", err, tt.want)
			}
			if strings.Contains(err.Error(), key) {
				t.Fatal("the error shows the master key")
			}
		})
	}
}

// TestSettingsDescribeEveryField: every variable Load reads is listed once,
// with a description, and every Config field is among them.
func TestSettingsDescribeEveryField(t *testing.T) {
	settings, err := Settings()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, s := range settings {
		if !strings.HasPrefix(s.Name, "MAILGATE_") || seen[s.Name] {
			t.Errorf("setting %q is not a new MAILGATE_ name", s.Name)
		}
		seen[s.Name] = true
		if strings.TrimSpace(s.Help) == "" {
			t.Errorf("%s has no help tag", s.Name)
		}
	}
	if !seen[ConfigFileVar] {
		t.Errorf("%s is not listed", ConfigFileVar)
	}
	if n := reflect.TypeOf(Config{}).NumField(); len(settings) != n+1 {
		t.Errorf("%d settings for %d Config fields and the config file", len(settings), n)
	}
}

// TestRetentionZeroKeeps: 0 turns each kind of retention off.
func TestRetentionZeroKeeps(t *testing.T) {
	c, err := Load([]string{"MAILGATE_RETENTION_CONTENT=0", "MAILGATE_RETENTION_MESSAGES=0", "MAILGATE_RETENTION_EVENTS=0",
		"MAILGATE_RETENTION_INBOUND=0", "MAILGATE_RETENTION_IDEMPOTENCY=0"})
	if err != nil {
		t.Fatal(err)
	}
	if c.RetentionContent != 0 || c.RetentionMessages != 0 || c.RetentionEvents != 0 || c.RetentionInbound != 0 ||
		c.RetentionIdempotency != 0 {
		t.Fatalf("retention ages %+v, want all 0", c)
	}
}
