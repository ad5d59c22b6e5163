package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mailgate/mailgate/internal/testsvc"
)

// e2eRedisDB is this package's Redis database number (other packages use
// 9, 11, 12, 13 and 15); the tests run one after another because they
// share it.
const e2eRedisDB = 10

// returnPathDomain is the VERP domain every gateway is configured with.
const returnPathDomain = "bounces.mailgate.test"

// mailgateBin is the binary TestMain builds once; it is set before any
// test runs and only read afterwards.
var mailgateBin string

func TestMain(m *testing.M) { os.Exit(runTests(m)) }

// runTests builds ./cmd/mailgate into a temporary directory, or uses the
// binary named by MAILGATE_E2E_BIN (to test a build made elsewhere).
func runTests(m *testing.M) int {
	if bin := os.Getenv("MAILGATE_E2E_BIN"); bin != "" {
		mailgateBin = bin
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "mailgate-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: temp dir:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	mailgateBin = filepath.Join(dir, "mailgate")
	build := exec.Command("go", "build", "-o", mailgateBin, "github.com/mailgate/mailgate/cmd/mailgate")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: go build ./cmd/mailgate: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// gateway is the configuration shared by every process of one test: the
// environment is MAILGATE_* only, plus PATH and HOME.
type gateway struct {
	t   *testing.T
	env []string
}

// newGateway prepares a database URL, the package's Redis database
// (flushed), a fresh master key and the settings every test wants; kv are
// more KEY=VALUE settings.
func newGateway(t *testing.T, databaseURL string, kv ...string) *gateway {
	t.Helper()
	redisURL := testsvc.RedisURLDB(t, e2eRedisDB)
	flushRedis(t, redisURL)
	return newGatewayRedis(t, databaseURL, redisURL, kv...)
}

// newGatewayRedis is newGateway on the Redis named by redisURL (used as
// is: a Redis of the test's own, such as a Sentinel setup or a Cluster).
func newGatewayRedis(t *testing.T, databaseURL, redisURL string, kv ...string) *gateway {
	t.Helper()
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + os.Getenv("HOME"),
		"MAILGATE_DATABASE_URL=" + databaseURL,
		"MAILGATE_REDIS_URL=" + redisURL,
		"MAILGATE_MASTER_KEY=" + base64.StdEncoding.EncodeToString(key),
		"MAILGATE_RETURN_PATH_DOMAIN=" + returnPathDomain,
		"MAILGATE_HELO_NAME=mailgate.test",
		"MAILGATE_API_RATE_LIMIT=0",
		"MAILGATE_LOG_LEVEL=info",
	}
	return &gateway{t: t, env: append(env, kv...)}
}

func flushRedis(t *testing.T, url string) {
	t.Helper()
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatalf("redis url: %v", err)
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	if err := rdb.FlushDB(context.Background()).Err(); err != nil {
		testsvc.Missing(t, "redis FLUSHDB", err)
	}
}

// command runs `mailgate args…` to completion and returns its stdout.
func (g *gateway) command(args ...string) string {
	g.t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(mailgateBin, args...)
	cmd.Env, cmd.Stdout, cmd.Stderr = g.env, &stdout, &stderr
	if err := cmd.Run(); err != nil {
		g.t.Fatalf("mailgate %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

// createKey makes an API key of the default project and returns its token.
func (g *gateway) createKey(scopes ...string) string {
	g.t.Helper()
	args := []string{"keys", "create", "--name", "e2e"}
	for _, s := range scopes {
		args = append(args, "--scope", s)
	}
	token := strings.TrimSpace(g.command(args...))
	if !strings.HasPrefix(token, "mg_") || strings.ContainsAny(token, " \n") {
		g.t.Fatalf("keys create printed %q, want one mg_ token", token)
	}
	return token
}

// process is one running mailgate role.
type process struct {
	name   string
	base   string // http://host:port of its API or metrics listener
	cmd    *exec.Cmd
	stderr *syncBuffer
	done   chan struct{}
	err    error
}

// start runs `mailgate role` with kv added to the environment, on a free
// loopback port (MAILGATE_LISTEN for api and serve, MAILGATE_METRICS_LISTEN
// for worker), and waits until its /readyz answers 200. The process is
// killed when the test ends; its stderr goes to the test log on failure.
func (g *gateway) start(role string, kv ...string) *process {
	g.t.Helper()
	addr := freeAddr(g.t)
	listenVar := "MAILGATE_LISTEN="
	if role == "worker" {
		listenVar = "MAILGATE_METRICS_LISTEN="
	}
	p := &process{name: role + "@" + addr, base: "http://" + addr, stderr: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(mailgateBin, role)
	p.cmd.Env = append(append(append([]string{}, g.env...), kv...), listenVar+addr)
	p.cmd.Stdout, p.cmd.Stderr = p.stderr, p.stderr
	if err := p.cmd.Start(); err != nil {
		g.t.Fatalf("start mailgate %s: %v", role, err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	g.t.Cleanup(func() {
		p.kill()
		if g.t.Failed() {
			g.t.Logf("--- stderr of mailgate %s (%v) ---\n%s", p.name, p.err, p.stderr.tail(16<<10))
		}
	})
	p.waitReady(g.t)
	return p
}

// waitReady polls /readyz (at most 30 s) while the process lives.
func (p *process) waitReady(t *testing.T) {
	t.Helper()
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for time.Now().Before(deadline) {
		if resp, err := client.Get(p.base + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-p.done:
			t.Fatalf("mailgate %s exited before it was ready: %v\n%s", p.name, p.err, p.stderr.tail(16<<10))
		case <-tick.C:
		}
	}
	t.Fatalf("mailgate %s not ready after 30 s\n%s", p.name, p.stderr.tail(16<<10))
}

// kill sends SIGKILL (no shutdown, no lease release) and waits for exit.
func (p *process) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// freeAddr is a loopback address with a port free right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// closedPort is a loopback port that was just bound and released, so that
// connecting to it is refused.
func closedPort(t *testing.T) int {
	t.Helper()
	_, port, _ := net.SplitHostPort(freeAddr(t))
	n, _ := strconv.Atoi(port)
	return n
}

// relayURL is a plaintext loopback relay URL with extra query settings.
func relayURL(port int, query string) string {
	u := fmt.Sprintf("smtp://127.0.0.1:%d?tls=none", port)
	if query != "" {
		u += "&" + query
	}
	return u
}

// syncBuffer is a goroutine-safe output buffer.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// tail is the last n bytes written.
func (b *syncBuffer) tail(n int) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.buf.String()
	if len(s) > n {
		s = "…" + s[len(s)-n:]
	}
	return s
}

// waitFor polls cond every 50 ms until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		<-tick.C
	}
}
