package testsvc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// haTimeout bounds each wait for a Redis setup to become ready (or for a
// failover to finish). Sentinels find each other through hello messages
// sent every 2 s, so a Sentinel setup is ready in about 2-3 s.
const haTimeout = 30 * time.Second

// redisProc is one redis-server process (a data node or a sentinel) the test
// started, on 127.0.0.1, with its files (configuration, log, data) in a
// directory of the test's own.
type redisProc struct {
	t    testing.TB
	name string
	addr string
	dir  string
	args []string
	cmd  *exec.Cmd
	done chan struct{}
}

// startRedisProc starts redis-server on 127.0.0.1:port with the test
// defaults (no persistence, files in a fresh t.TempDir) followed by args,
// waits until it answers PING and stops it when the test ends.
func startRedisProc(t testing.TB, name string, port int, args ...string) *redisProc {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		Missing(t, "redis-server", err)
	}
	dir := t.TempDir()
	p := &redisProc{t: t, name: name, addr: "127.0.0.1:" + strconv.Itoa(port), dir: dir}
	p.args = append([]string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
		"--logfile", filepath.Join(dir, "redis.log"), "--save", "", "--appendonly", "no"}, args...)
	p.start()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			p.logTail()
		}
	})
	return p
}

// startSentinelProc starts redis-server in sentinel mode on 127.0.0.1:port
// with conf (written to a file in a fresh t.TempDir, which Sentinel
// rewrites as it learns) and waits until it answers PING.
func startSentinelProc(t testing.TB, name string, port int, conf string) *redisProc {
	t.Helper()
	dir := t.TempDir()
	file := filepath.Join(dir, "sentinel.conf")
	conf = fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\nlogfile %s\n", port, dir, filepath.Join(dir, "redis.log")) + conf
	if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
		t.Fatalf("write %s: %v", file, err)
	}
	p := &redisProc{t: t, name: name, addr: "127.0.0.1:" + strconv.Itoa(port), dir: dir,
		args: []string{file, "--sentinel"}}
	p.start()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			p.logTail()
		}
	})
	return p
}

func (p *redisProc) start() {
	p.t.Helper()
	p.cmd = exec.Command("redis-server", p.args...)
	// A process group of its own, so that kill also ends a child forked
	// for an AOF rewrite, which would go on writing into the test's
	// TempDir while it is removed.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		p.t.Fatalf("start %s: %v", p.name, err)
	}
	p.done = make(chan struct{})
	cmd, done := p.cmd, p.done
	go func() { _ = cmd.Wait(); close(done) }()
	rdb := redis.NewClient(&redis.Options{Addr: p.addr, MaxRetries: -1, DialTimeout: time.Second})
	defer rdb.Close()
	p.waitFor(10*time.Second, "answering PING", func(ctx context.Context) (bool, error) {
		select {
		case <-done:
			return false, errors.New("exited")
		default:
		}
		return rdb.Ping(ctx).Err() == nil, nil
	})
}

// kill stops the process with SIGKILL (no shutdown, no save) and waits.
func (p *redisProc) kill() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
	p.cmd = nil
}

// client is a plain client of this process.
func (p *redisProc) client() *redis.Client {
	return redis.NewClient(&redis.Options{Addr: p.addr, MaxRetries: -1})
}

// waitFor polls cond every 20 ms until it is true, failing the test after
// timeout or when cond returns an error.
func (p *redisProc) waitFor(timeout time.Duration, what string, cond func(ctx context.Context) (bool, error)) {
	p.t.Helper()
	if err := poll(timeout, cond); err != nil {
		p.logTail()
		p.t.Fatalf("%s on %s: not %s: %v", p.name, p.addr, what, err)
	}
}

// poll calls cond every 20 ms until it is true (nil), returns an error
// (that error), or timeout passes.
func poll(timeout time.Duration, cond func(ctx context.Context) (bool, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		ok, err := cond(ctx)
		cancel()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("still not after %s", timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// logTail logs the end of the process's log file.
func (p *redisProc) logTail() {
	b, _ := os.ReadFile(filepath.Join(p.dir, "redis.log"))
	if len(b) > 4096 {
		b = b[len(b)-4096:]
	}
	p.t.Logf("--- log of %s (%s) ---\n%s", p.name, p.addr, b)
}

// freePorts returns n distinct loopback ports free right now: the
// listeners are held until all n are picked.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	ports := make([]int, n)
	for i := range ports {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("free port: %v", err)
		}
		defer ln.Close()
		ports[i] = ln.Addr().(*net.TCPAddr).Port
	}
	return ports
}

// SentinelMaster is the name the Sentinel setup monitors its primary under.
const SentinelMaster = "mailgate"

// Sentinel is a Redis Sentinel setup the test started on loopback ports:
// a primary, one replica of it and three sentinels (quorum 2) that declare
// the primary down after one second without an answer.
type Sentinel struct {
	t         testing.TB
	nodes     []*redisProc // the primary first, then the replica
	sentinels []*redisProc
}

// StartSentinel starts the setup and waits until the replica is in sync,
// every sentinel knows the replica and the two other sentinels (so that a
// failover can be agreed on), all by polling. Everything stops when the
// test ends.
func StartSentinel(t testing.TB) *Sentinel {
	t.Helper()
	ports := freePorts(t, 5)
	s := &Sentinel{t: t}
	// Without a delay, a full resynchronisation starts at once (the
	// default waits 5 s for more replicas to join it).
	primary := startRedisProc(t, "redis primary", ports[0], "--repl-diskless-sync-delay", "0")
	replica := startRedisProc(t, "redis replica", ports[1], "--repl-diskless-sync-delay", "0",
		"--replicaof", "127.0.0.1", strconv.Itoa(ports[0]))
	s.nodes = []*redisProc{primary, replica}
	rc := replica.client()
	defer rc.Close()
	replica.waitFor(haTimeout, "in sync with the primary", func(ctx context.Context) (bool, error) {
		info, err := rc.Info(ctx, "replication").Result()
		return err == nil && strings.Contains(info, "master_link_status:up"), nil
	})
	conf := fmt.Sprintf("sentinel monitor %[1]s 127.0.0.1 %[2]d 2\n"+
		"sentinel down-after-milliseconds %[1]s 1000\n"+
		"sentinel failover-timeout %[1]s 10000\n", SentinelMaster, ports[0])
	for i, port := range ports[2:] {
		s.sentinels = append(s.sentinels, startSentinelProc(t, "sentinel "+strconv.Itoa(i+1), port, conf))
	}
	for _, sp := range s.sentinels {
		sc := redis.NewSentinelClient(&redis.Options{Addr: sp.addr, MaxRetries: -1})
		sp.waitFor(haTimeout, "aware of the replica and of the other sentinels", func(ctx context.Context) (bool, error) {
			peers, err := sc.Sentinels(ctx, SentinelMaster).Result()
			if err != nil || len(peers) != len(s.sentinels)-1 {
				return false, nil
			}
			replicas, err := sc.Replicas(ctx, SentinelMaster).Result()
			return err == nil && len(replicas) == 1 && replicas[0]["flags"] == "slave" &&
				replicas[0]["master-link-status"] == "ok", nil
		})
		sc.Close()
	}
	return s
}

// URL is the setup's redis-sentinel:// URL (every sentinel, the master
// name, database db).
func (s *Sentinel) URL(db int) string {
	return fmt.Sprintf("redis-sentinel://%s?master=%s&db=%d", strings.Join(s.SentinelAddrs(), ","), SentinelMaster, db)
}

// SentinelAddrs are the sentinels' host:port addresses.
func (s *Sentinel) SentinelAddrs() []string {
	addrs := make([]string, len(s.sentinels))
	for i, sp := range s.sentinels {
		addrs[i] = sp.addr
	}
	return addrs
}

// Primary is the address of the primary the first sentinel reports.
func (s *Sentinel) Primary() string {
	s.t.Helper()
	sc := redis.NewSentinelClient(&redis.Options{Addr: s.sentinels[0].addr})
	defer sc.Close()
	addr, err := sc.GetMasterAddrByName(context.Background(), SentinelMaster).Result()
	if err != nil {
		s.t.Fatalf("sentinel get-master-addr-by-name: %v", err)
	}
	return net.JoinHostPort(addr[0], addr[1])
}

// KillPrimary kills the current primary with SIGKILL (whatever it had not
// yet sent to the replica is lost, as when a machine dies) and returns at
// once, without waiting for the failover; see WaitFailover.
func (s *Sentinel) KillPrimary() string {
	s.t.Helper()
	old := s.Primary()
	for _, n := range s.nodes {
		if n.addr == old {
			n.kill()
			return old
		}
	}
	s.t.Fatalf("primary %s is none of the setup's nodes", old)
	return ""
}

// WaitFailover polls until every sentinel names a primary other than old
// and that node answers as a master.
func (s *Sentinel) WaitFailover(old string) {
	s.t.Helper()
	err := poll(haTimeout, func(ctx context.Context) (bool, error) {
		var now string
		for _, sp := range s.sentinels {
			sc := redis.NewSentinelClient(&redis.Options{Addr: sp.addr, MaxRetries: -1})
			addr, err := sc.GetMasterAddrByName(ctx, SentinelMaster).Result()
			sc.Close()
			if err != nil {
				return false, nil
			}
			if a := net.JoinHostPort(addr[0], addr[1]); a == old || (now != "" && a != now) {
				return false, nil
			} else {
				now = a
			}
		}
		rdb := redis.NewClient(&redis.Options{Addr: now, MaxRetries: -1})
		defer rdb.Close()
		role, err := rdb.Do(ctx, "ROLE").Slice()
		return err == nil && len(role) > 0 && role[0] == "master", nil
	})
	if err != nil {
		for _, sp := range s.sentinels {
			sp.logTail()
		}
		s.t.Fatalf("no failover away from %s: %v", old, err)
	}
}

// Cluster is a Redis Cluster the test started on loopback ports: masters
// only (no replicas), the 16384 hash slots split evenly between them.
type Cluster struct {
	nodes []*redisProc
}

// StartCluster starts a cluster of n masters (at least 3, the smallest
// Redis Cluster), assigns the slots (CLUSTER ADDSLOTSRANGE), joins the
// nodes (CLUSTER MEET) and polls until every node reports cluster_state:ok
// and knows all n nodes. The nodes stop when the test ends.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	if n < 3 {
		t.Fatalf("StartCluster: %d nodes, want at least 3", n)
	}
	ports := freePorts(t, 2*n) // a client port and a cluster bus port each
	c := &Cluster{}
	ctx := context.Background()
	for i := range n {
		p := startRedisProc(t, "cluster node "+strconv.Itoa(i+1), ports[2*i],
			"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-port", strconv.Itoa(ports[2*i+1]), "--cluster-node-timeout", "5000")
		c.nodes = append(c.nodes, p)
		rdb := p.client()
		first, last := i*16384/n, (i+1)*16384/n-1
		err := rdb.Do(ctx, "CLUSTER", "SET-CONFIG-EPOCH", i+1).Err()
		if err == nil {
			err = rdb.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", first, last).Err()
		}
		rdb.Close()
		if err != nil {
			t.Fatalf("%s: assign slots %d-%d: %v", p.name, first, last, err)
		}
	}
	rdb := c.nodes[0].client()
	for i := 1; i < n; i++ {
		if err := rdb.Do(ctx, "CLUSTER", "MEET", "127.0.0.1", ports[2*i], ports[2*i+1]).Err(); err != nil {
			t.Fatalf("cluster meet %d: %v", ports[2*i], err)
		}
	}
	rdb.Close()
	want := fmt.Sprintf("cluster_known_nodes:%d\r\n", n)
	for _, p := range c.nodes {
		rdb := p.client()
		p.waitFor(haTimeout, "in a cluster with every slot served", func(ctx context.Context) (bool, error) {
			info, err := rdb.ClusterInfo(ctx).Result()
			return err == nil && strings.Contains(info, "cluster_state:ok\r\n") && strings.Contains(info, want), nil
		})
		rdb.Close()
	}
	return c
}

// URL is the cluster's redis-cluster:// URL, naming every node.
func (c *Cluster) URL() string { return "redis-cluster://" + strings.Join(c.Addrs(), ",") }

// Addrs are the nodes' host:port addresses.
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.nodes))
	for i, p := range c.nodes {
		addrs[i] = p.addr
	}
	return addrs
}
