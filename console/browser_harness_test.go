package console_test

// The real-browser harness: a real gateway (the mailgate binary, `serve`,
// on SQLite and the package's Redis database, relaying to an in-process
// SMTP server), Debian's chromium driven by chromedp, screenshots written
// to the artifacts directory, and the XSS trap. Pages added to the console
// are tested with these helpers: startGateway, newBrowser, signInBrowser,
// screenshot, waitJS and the trap's assertions.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/mailgate/mailgate/apikey"
	"github.com/mailgate/mailgate/internal/smtptest"
	"github.com/mailgate/mailgate/internal/testsvc"
)

// binary builds ./cmd/mailgate once per test process (without -race: the
// gateway is the system under test, not the harness).
var binary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "mailgate-console-bin-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "mailgate")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/mailgate/mailgate/cmd/mailgate").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build ./cmd/mailgate: %w\n%s", err, out)
	}
	return bin, nil
})

// gateway is a running `mailgate serve` (API with the console, worker,
// poller) on loopback.
type gateway struct {
	t *testing.T
	// URL is http://127.0.0.1:PORT.
	URL   string
	bin   string
	env   []string
	Relay *smtptest.Server
}

// startGateway starts `mailgate serve` on a fresh SQLite database and the
// package's Redis database (flushed), relaying to an in-process SMTP
// server that accepts everything, and waits for /readyz. kv are more
// MAILGATE_* settings. It stops when the test ends.
func startGateway(t *testing.T, kv ...string) *gateway {
	t.Helper()
	bin, err := binary()
	if err != nil {
		t.Fatal(err)
	}
	testRedis(t)
	relay, err := smtptest.Start(nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = relay.Close() })
	master := make([]byte, 32)
	_, _ = rand.Read(master)
	addr := freeAddr(t)
	g := &gateway{t: t, URL: "http://" + addr, bin: bin, Relay: relay, env: append([]string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"),
		"MAILGATE_DATABASE_URL=" + testsvc.SQLiteURL(t),
		"MAILGATE_REDIS_URL=" + testsvc.RedisURLDB(t, consoleTestRedisDB),
		"MAILGATE_MASTER_KEY=" + base64.StdEncoding.EncodeToString(master),
		"MAILGATE_RELAYS=" + fmt.Sprintf("smtp://%s?tls=none", relay.Addr()),
		"MAILGATE_ALLOWED_SENDER_DOMAINS=shop.example",
		"MAILGATE_HELO_NAME=mailgate.test",
		"MAILGATE_API_RATE_LIMIT=0",
		"MAILGATE_LISTEN=" + addr,
	}, kv...)}
	g.run(context.Background())
	return g
}

// run starts the server process and waits until it is ready.
func (g *gateway) run(ctx context.Context) {
	t := g.t
	var logs bytes.Buffer
	var mu sync.Mutex
	cmd := exec.CommandContext(ctx, g.bin, "serve")
	cmd.Env = g.env
	cmd.Stdout, cmd.Stderr = lockedWriter{&mu, &logs}, lockedWriter{&mu, &logs}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start mailgate serve: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		<-done
		if t.Failed() {
			mu.Lock()
			t.Logf("--- mailgate serve ---\n%s", logs.String())
			mu.Unlock()
		}
	})
	client := &http.Client{Timeout: time.Second}
	waitFor(t, 30*time.Second, "mailgate serve /readyz", func() bool {
		select {
		case <-done:
			t.Fatalf("mailgate serve exited:\n%s", logs.String())
		default:
		}
		resp, err := client.Get(g.URL + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// command runs `mailgate args…` against the gateway's database and Redis
// and returns its stdout.
func (g *gateway) command(args ...string) string {
	g.t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(g.bin, args...)
	cmd.Env, cmd.Stdout, cmd.Stderr = g.env, &stdout, &stderr
	if err := cmd.Run(); err != nil {
		g.t.Fatalf("mailgate %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

// createKey makes a key of the default project: its id and token.
func (g *gateway) createKey(scopes ...string) (id, token string) {
	g.t.Helper()
	args := []string{"keys", "create", "--name", "browser test"}
	for _, s := range scopes {
		args = append(args, "--scope", s)
	}
	token = strings.TrimSpace(g.command(args...))
	id, _, err := apikey.Parse(token)
	if err != nil {
		g.t.Fatalf("keys create printed %q: %v", token, err)
	}
	return id, token
}

// send posts a message (JSON) through the API: its id.
func (g *gateway) send(token string, msg any) string {
	g.t.Helper()
	body, err := json.Marshal(msg)
	if err != nil {
		g.t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, g.URL+"/v1/messages", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		g.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		ID     string `json:"id"`
		Detail string `json:"detail"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&out)
	if resp.StatusCode != http.StatusAccepted {
		g.t.Fatalf("send: %d %s", resp.StatusCode, out.Detail)
	}
	return out.ID
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
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

// trap records any sign that hostile content ran: a call of the page
// function mgTrap (a CDP binding, present in every page and frame whatever
// its CSP), a JavaScript dialog (alert, confirm, prompt), or any request
// to the trap server, whose URL payloads load.
type trap struct {
	// URL is the trap server's base URL (loopback).
	URL     string
	calls   atomic.Int64
	dialogs atomic.Int64
	hits    atomic.Int64
	mu      sync.Mutex
	what    []string
}

func newTrap(t *testing.T) *trap {
	tr := &trap{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tr.hits.Add(1)
		tr.note("request " + r.URL.Path)
	}))
	t.Cleanup(srv.Close)
	tr.URL = srv.URL
	return tr
}

func (tr *trap) note(s string) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.what = append(tr.what, s)
}

// assertUntripped fails the test if anything tripped the trap.
func (tr *trap) assertUntripped(t *testing.T) {
	t.Helper()
	if tr.calls.Load()+tr.dialogs.Load()+tr.hits.Load() != 0 {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		t.Errorf("the XSS trap tripped: %d mgTrap calls, %d dialogs, %d requests to the trap server: %v",
			tr.calls.Load(), tr.dialogs.Load(), tr.hits.Load(), tr.what)
	}
}

// chromium is the system browser, or the test is skipped (failed under
// CI=true).
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	testsvc.Missing(t, "chromium", exec.ErrNotFound)
	return ""
}

// newBrowser starts a headless chromium with a fresh profile and the
// trap armed; the context ends with the test (or after 3 minutes).
func newBrowser(t *testing.T, tr *trap) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium(t)),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		// A sandboxed frame stays in its page's process, so that tests
		// reach its document (frameText) and screenshots show it.
		chromedp.Flag("disable-features", "IsolateSandboxedIframes"),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelCtx(); cancelAlloc() })
	// The first action starts the browser; the trap is armed before any
	// page loads.
	err := chromedp.Do(ctx, chromedp.ExposeFunc("mgTrap", func(_ context.Context, args []any) (bool, error) {
		tr.calls.Add(1)
		tr.note(fmt.Sprint("mgTrap", args))
		return true, nil
	}))
	if err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	// The trap works: a call from the page is seen (then forgotten).
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`mgTrap('self-test')`, chromedp.EvalAwaitPromise)); err != nil ||
		tr.calls.Load() != 1 {
		t.Fatalf("the trap did not see a call: %v", err)
	}
	tr.calls.Store(0)
	tr.what = nil
	dialogs := chromedp.Events(ctx, page.JavascriptDialogOpening)
	go func() {
		for ev, err := range dialogs {
			if err != nil {
				return
			}
			tr.dialogs.Add(1)
			tr.note("dialog " + ev.Message)
			_, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false})
		}
	}()
	return ctx
}

// do runs chromedp actions, failing the test on error.
func do(t *testing.T, ctx context.Context, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("browser: %v", err)
	}
}

// get runs one chromedp action that returns a value.
func get[T any](t *testing.T, ctx context.Context, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatalf("browser: %v", err)
	}
	return v
}

// css is a CSS selector.
func css(sel string) chromedp.CSS { return chromedp.CSS(sel) }

// signInBrowser signs in through the sign-in form, typing the key.
func signInBrowser(t *testing.T, ctx context.Context, g *gateway, token string) {
	t.Helper()
	do(t, ctx,
		chromedp.Navigate(g.URL+"/console"),
		chromedp.WaitVisible(css("#key")),
		chromedp.SendKeys(css("#key"), token),
		chromedp.Submit(css("#key")),
		chromedp.WaitVisible(css(`nav[aria-label="Main"]`)),
	)
}

// waitJS polls a JavaScript expression in the page until it is true.
func waitJS(t *testing.T, ctx context.Context, timeout time.Duration, what, expr string) {
	t.Helper()
	waitFor(t, timeout, what, func() bool {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr))
		if err != nil {
			t.Fatalf("evaluate %s: %v", expr, err)
		}
		return ok
	})
}

// artifactsDir is where screenshots go: MAILGATE_TEST_ARTIFACTS, or
// mailgate-test-artifacts in the system's temporary directory; each
// package writes under its own name.
func artifactsDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("MAILGATE_TEST_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "mailgate-test-artifacts")
	}
	dir = filepath.Join(dir, "console")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// screenshot writes the whole page as NAME.png to the artifacts
// directory. The viewport is stretched to the page's height for the shot
// (a capture beyond the viewport leaves frames unpainted).
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	width := get(t, ctx, chromedp.Evaluate[int64](`window.innerWidth`))
	height := get(t, ctx, chromedp.Evaluate[int64](`document.documentElement.scrollHeight`))
	if _, err := chromedp.Call(ctx, emulation.SetDeviceMetricsOverride,
		emulation.SetDeviceMetricsOverrideParams{Width: width, Height: height, DeviceScaleFactor: 1}); err != nil {
		t.Fatalf("resize for the screenshot: %v", err)
	}
	png := get(t, ctx, chromedp.CaptureScreenshot())
	if _, err := chromedp.Call(ctx, emulation.ClearDeviceMetricsOverride, cdp.Empty{}); err != nil {
		t.Fatalf("resize back: %v", err)
	}
	p := filepath.Join(artifactsDir(t), name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot %s", p)
}
