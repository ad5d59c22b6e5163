// Package testsvc finds the real services (Redis, PostgreSQL) that tests run
// against. A missing service skips the test on a laptop and fails it in CI
// (CI=true). Tests may read the environment; production code may not.
package testsvc

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
)

// Missing skips the test, or fails it when CI=true.
func Missing(t testing.TB, what string, err error) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is required in CI: %v", what, err)
	}
	t.Skipf("%s not available: %v", what, err)
}

// RedisURL is the Redis the tests use: MAILGATE_TEST_REDIS_URL or
// redis://127.0.0.1:6379/15. Each test package should pick its own DB
// number through RedisURLDB when tests run in parallel packages.
func RedisURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("MAILGATE_TEST_REDIS_URL")
	if u == "" {
		u = "redis://127.0.0.1:6379/15"
	}
	pu, err := url.Parse(u)
	if err != nil {
		t.Fatalf("MAILGATE_TEST_REDIS_URL: %v", err)
	}
	if err := dialCheck(pu.Host); err != nil {
		Missing(t, "redis at "+pu.Host, err)
	}
	return u
}

// RedisURLDB is RedisURL with the database number replaced by db, so that
// test packages running at the same time do not flush each other.
func RedisURLDB(t testing.TB, db int) string {
	t.Helper()
	pu, _ := url.Parse(RedisURL(t))
	pu.Path = "/" + strconv.Itoa(db)
	return pu.String()
}

// PostgresURL creates a fresh, empty database for the test on the server
// named by MAILGATE_TEST_POSTGRES_URL (default
// postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable) and drops it
// when the test ends. It returns the new database's URL.
func PostgresURL(t testing.TB) string {
	t.Helper()
	admin := os.Getenv("MAILGATE_TEST_POSTGRES_URL")
	if admin == "" {
		admin = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	}
	pu, err := url.Parse(admin)
	if err != nil {
		t.Fatalf("MAILGATE_TEST_POSTGRES_URL: %v", err)
	}
	if err := dialCheck(pu.Host); err != nil {
		Missing(t, "postgres at "+pu.Host, err)
	}
	db, err := sql.Open("pgx", admin)
	if err != nil {
		t.Fatalf("open postgres: %v", err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	name := "mgtest_" + randomHex(8)
	if _, err := db.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		Missing(t, "postgres CREATE DATABASE", err)
	}
	t.Cleanup(func() {
		db, err := sql.Open("pgx", admin)
		if err != nil {
			return
		}
		defer db.Close()
		_, _ = db.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)")
	})
	pu.Path = "/" + name
	return pu.String()
}

// SQLiteURL is a fresh SQLite database in the test's temporary directory.
func SQLiteURL(t testing.TB) string {
	t.Helper()
	return "sqlite:" + t.TempDir() + "/mailgate.db"
}

// DatabaseURLs returns one fresh database per engine, keyed by dialect, for
// tests that must pass on both.
func DatabaseURLs(t testing.TB) map[string]string {
	t.Helper()
	return map[string]string{"sqlite": SQLiteURL(t), "postgres": PostgresURL(t)}
}

func dialCheck(host string) error {
	if !strings.Contains(host, ":") {
		host += ":0"
	}
	c, err := net.DialTimeout("tcp", host, 2*time.Second)
	if err != nil {
		return err
	}
	return c.Close()
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Redis is a redis-server the test started on a loopback port of its own,
// without persistence unless its arguments ask for it, so that the test may
// restart it.
type Redis struct {
	proc *redisProc
}

// StartRedis starts redis-server (from PATH) on a free loopback port and
// waits until it answers PING; it is stopped when the test ends.
func StartRedis(t testing.TB) *Redis { return StartRedisArgs(t) }

// StartRedisArgs is StartRedis with more redis-server arguments (such as
// "--maxmemory-policy", "allkeys-lru"), given after the defaults so that
// they win.
func StartRedisArgs(t testing.TB, args ...string) *Redis {
	t.Helper()
	ports := freePorts(t, 1)
	return &Redis{proc: startRedisProc(t, "redis", ports[0], args...)}
}

// URL is redis://127.0.0.1:PORT/0.
func (r *Redis) URL() string { return "redis://" + r.proc.addr + "/0" }

// Restart stops the server (SIGKILL: connections drop, everything it held
// is lost) and starts it again on the same port.
func (r *Redis) Restart() {
	r.proc.t.Helper()
	r.proc.kill()
	r.proc.start()
}
