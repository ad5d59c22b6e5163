package main

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/mailgate/mailgate/config"
	"github.com/mailgate/mailgate/internal/testsvc"
	"github.com/mailgate/mailgate/queue"
)

// checkApp runs checkRedis on the Redis at url in env (development or
// production) and returns what it logged and its error.
func checkApp(t *testing.T, env, url string) (string, error) {
	t.Helper()
	rdb, err := queue.OpenRedis(url)
	if err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	defer rdb.Close()
	var log bytes.Buffer
	a := &app{cfg: config.Config{Env: env}, log: slog.New(slog.NewTextHandler(&log, nil)), redis: rdb}
	err = a.checkRedis(context.Background())
	return log.String(), err
}

// TestCheckRedis: production mode refuses an evicting or non-persistent
// Redis and starts on a safe one; development warns instead of refusing;
// a Redis that refuses CONFIG GET (renamed away, or an ACL user without
// +config) starts in both modes with a warning saying it could not check
// and what to verify by hand.
func TestCheckRedis(t *testing.T) {
	tests := []struct {
		name string
		args []string
		user string // user:password of the URL, for an ACL user
		// refused is what the production error says; "" when it starts.
		refused string
		// warned is what both modes log; "" when nothing.
		warned []string
	}{
		{name: "AOF, noeviction", args: []string{"--appendonly", "yes"}},
		{name: "RDB snapshots, noeviction", args: []string{"--save", "60 1"}},
		{name: "evicting", args: []string{"--appendonly", "yes", "--maxmemory-policy", "allkeys-lru"},
			refused: "maxmemory-policy is allkeys-lru (want noeviction)"},
		{name: "not persistent", refused: "persistence is off (neither AOF nor RDB snapshots)"},
		{name: "CONFIG renamed", args: []string{"--appendonly", "yes", "--rename-command", "CONFIG", ""},
			warned: []string{"could not check the settings of redis", "unknown command",
				"maxmemory-policy is noeviction", "appendonly yes", "save"}},
		{name: "ACL user without +config", user: "mailgate:s3cret-pw",
			args: []string{"--appendonly", "yes", "--user", "mailgate", "on", ">s3cret-pw", "~*", "&*", "+@all", "-config"},
			warned: []string{"could not check the settings of redis", "NOPERM",
				"maxmemory-policy is noeviction", "appendonly yes"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url := testsvc.StartRedisArgs(t, tt.args...).URL()
			if tt.user != "" {
				url = strings.Replace(url, "redis://", "redis://"+tt.user+"@", 1)
			}
			for _, env := range []string{"production", "development"} {
				log, err := checkApp(t, env, url)
				switch {
				case tt.refused == "" && err != nil:
					t.Errorf("%s: refused: %v", env, err)
				case tt.refused != "" && env == "production" && (err == nil || !strings.Contains(err.Error(), tt.refused)):
					t.Errorf("%s: error %v, want one saying %q", env, err, tt.refused)
				case tt.refused != "" && env == "development" && (err != nil || !strings.Contains(log, tt.refused)):
					t.Errorf("%s: error %v, log %q; want a warning saying %q", env, err, log, tt.refused)
				}
				for _, w := range tt.warned {
					if !strings.Contains(log, w) {
						t.Errorf("%s: log %q does not say %q", env, log, w)
					}
				}
				if tt.refused == "" && tt.warned == nil && log != "" {
					t.Errorf("%s: logged %q, want nothing", env, log)
				}
				if strings.Contains(log, "s3cret-pw") || err != nil && strings.Contains(err.Error(), "s3cret-pw") {
					t.Errorf("%s: the password appears in %q / %v", env, log, err)
				}
			}
		})
	}
}

// TestCheckRedisClusterEveryNode: on a Cluster every node is asked; one
// evicting node out of three is refused in production, by its address.
func TestCheckRedisClusterEveryNode(t *testing.T) {
	cl := testsvc.StartCluster(t, 3)
	ctx := context.Background()
	for _, addr := range cl.Addrs() {
		rdb := redis.NewClient(&redis.Options{Addr: addr})
		err := rdb.ConfigSet(ctx, "appendonly", "yes").Err()
		rdb.Close()
		if err != nil {
			t.Fatalf("CONFIG SET appendonly yes on %s: %v", addr, err)
		}
	}
	if log, err := checkApp(t, "production", cl.URL()); err != nil || log != "" {
		t.Fatalf("safe cluster: error %v, log %q; want neither", err, log)
	}
	bad := cl.Addrs()[2]
	rdb := redis.NewClient(&redis.Options{Addr: bad})
	defer rdb.Close()
	if err := rdb.ConfigSet(ctx, "maxmemory-policy", "volatile-lru").Err(); err != nil {
		t.Fatalf("CONFIG SET: %v", err)
	}
	_, err := checkApp(t, "production", cl.URL())
	if want := "redis node " + bad + ": maxmemory-policy is volatile-lru"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("error %v, want one saying %q", err, want)
	}
	for _, good := range cl.Addrs()[:2] {
		if err != nil && strings.Contains(err.Error(), good) {
			t.Errorf("error %v names %s, whose settings are safe", err, good)
		}
	}
}
