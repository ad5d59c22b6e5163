package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// gateway is one `mailgate serve` process and what it was started with.
type gateway struct {
	bin       string
	env       []string
	base      string
	pprofAddr string
	cmd       *exec.Cmd
	done      chan error
	log       *os.File
}

// newGateway prepares the environment: MAILGATE_* only, plus PATH and
// HOME; no rate limits (API or delivery); a fresh master key.
func newGateway(o options, relayPort int) (*gateway, error) {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	listen, err := freeAddr()
	if err != nil {
		return nil, err
	}
	g := &gateway{bin: o.bin, base: "http://" + listen}
	g.env = []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"),
		"MAILGATE_DATABASE_URL=" + o.db,
		"MAILGATE_REDIS_URL=" + o.redis,
		"MAILGATE_MASTER_KEY=" + base64.StdEncoding.EncodeToString(key),
		"MAILGATE_LISTEN=" + listen,
		"MAILGATE_RELAYS=" + fmt.Sprintf("smtp://127.0.0.1:%d?tls=none&max_conns=%d", relayPort, o.relayConns),
		"MAILGATE_RETURN_PATH_DOMAIN=bounces.bench.example",
		"MAILGATE_HELO_NAME=bench.localhost",
		"MAILGATE_API_RATE_LIMIT=0",
		"MAILGATE_RATE_PROVIDER_DEFAULTS=false",
		"MAILGATE_LOG_LEVEL=warn",
		"MAILGATE_WEBHOOK_ALLOW_HTTP=true",
		"MAILGATE_WEBHOOK_ALLOWED_NETWORKS=127.0.0.0/8",
	}
	if o.workers > 0 {
		g.env = append(g.env, fmt.Sprintf("MAILGATE_WORKER_CONCURRENCY=%d", o.workers))
	}
	if o.cpuProfile != "" {
		if g.pprofAddr, err = freeAddr(); err != nil {
			return nil, err
		}
		g.env = append(g.env, "MAILGATE_PPROF_LISTEN="+g.pprofAddr)
	}
	return g, nil
}

// flushRedis empties the benchmark's Redis database (a private one:
// scripts/bench.sh starts it).
func flushRedis(ctx context.Context, url string) error {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return fmt.Errorf("redis url: %w", err)
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	return rdb.FlushDB(ctx).Err()
}

// run runs `mailgate args…` to completion and returns its stdout.
func (g *gateway) run(args ...string) (string, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(g.bin, args...)
	cmd.Env, cmd.Stdout, cmd.Stderr = g.env, &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("mailgate %s: %w: %s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// start runs `mailgate serve`, its output to logPath, and waits until
// /readyz answers.
func (g *gateway) start(logPath string) error {
	f, err := os.Create(logPath)
	if err != nil {
		return err
	}
	g.log = f
	g.cmd = exec.Command(g.bin, "serve")
	g.cmd.Env, g.cmd.Stdout, g.cmd.Stderr = g.env, f, f
	if err := g.cmd.Start(); err != nil {
		return fmt.Errorf("start mailgate serve: %w", err)
	}
	g.done = make(chan error, 1)
	go func() { g.done <- g.cmd.Wait() }()
	client := &http.Client{Timeout: time.Second}
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); {
		if resp, err := client.Get(g.base + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case err := <-g.done:
			return fmt.Errorf("mailgate serve exited (%v); see %s", err, logPath)
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("mailgate serve not ready after 60 s; see %s", logPath)
}

// stop ends the server with SIGTERM (a clean shutdown), then SIGKILL
// after 20 s.
func (g *gateway) stop() {
	if g.cmd == nil || g.cmd.Process == nil {
		return
	}
	_ = g.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-g.done:
	case <-time.After(20 * time.Second):
		_ = g.cmd.Process.Kill()
		<-g.done
	}
	_ = g.log.Close()
}

// post sends a JSON body with the token and checks the status.
func post(ctx context.Context, hc *http.Client, url, token string, body []byte, want int) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != want {
		return nil, fmt.Errorf("POST %s: status %d: %.300s", url, resp.StatusCode, out)
	}
	return out, nil
}

// createDomain registers the sender domain with the chosen algorithms.
func (g *gateway) createDomain(ctx context.Context, token, name string, algorithms []string) error {
	body, _ := json.Marshal(map[string]any{"name": name, "dkim": map[string]any{"algorithms": algorithms}})
	_, err := post(ctx, http.DefaultClient, g.base+"/v1/domains", token, body, http.StatusCreated)
	return err
}

// profileCPU fetches a CPU profile of the server over the given seconds.
func (g *gateway) profileCPU(path string, seconds int) error {
	if g.pprofAddr == "" {
		return errors.New("pprof listener not configured")
	}
	resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", g.pprofAddr, seconds))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("pprof: status %d", resp.StatusCode)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// deliveryCounts sums mailgate_delivery_attempts_total by result from
// /metrics.
func (g *gateway) deliveryCounts() (map[string]float64, error) {
	resp, err := http.Get(g.base + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for _, line := range strings.Split(string(raw), "\n") {
		if !strings.HasPrefix(line, "mailgate_delivery_attempts_total{") {
			continue
		}
		_, rest, _ := strings.Cut(line, `result="`)
		result, _, _ := strings.Cut(rest, `"`)
		var v float64
		fields := strings.Fields(line)
		_, _ = fmt.Sscan(fields[len(fields)-1], &v)
		out[result] += v
	}
	return out, nil
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// serverUsage is what `mailgate serve` has used so far.
type serverUsage struct {
	ok      bool
	cpu     time.Duration
	written int64
}

// usage reads the server's CPU time (utime and stime of /proc/PID/stat,
// in clock ticks of 1/100 s, as on every Linux this runs on) and the
// bytes it passed to write calls (wchar of /proc/PID/io).
func (g *gateway) usage() serverUsage {
	pid := g.cmd.Process.Pid
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return serverUsage{}
	}
	// The fields after the command name, which ends at the last ')':
	// utime and stime are the 14th and 15th fields, 12th and 13th here.
	f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	if len(f) < 13 {
		return serverUsage{}
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	io, err3 := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err1 != nil || err2 != nil || err3 != nil {
		return serverUsage{}
	}
	u := serverUsage{ok: true, cpu: time.Duration(utime+stime) * 10 * time.Millisecond}
	for l := range strings.SplitSeq(string(io), "\n") {
		if v, ok := strings.CutPrefix(l, "wchar: "); ok {
			u.written, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	return u
}
