package testsvc

import (
	"context"
	"strconv"
	"testing"

	"github.com/redis/go-redis/v9"
)

// TestSentinelFailover: a key written through the Sentinel setup and
// replicated (WAIT) is still there after the primary is killed and the
// sentinels promote the replica.
func TestSentinelFailover(t *testing.T) {
	s := StartSentinel(t)
	ctx := context.Background()
	rdb := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: SentinelMaster,
		SentinelAddrs: s.SentinelAddrs()})
	defer rdb.Close()
	if err := rdb.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("set: %v", err)
	}
	if n, err := rdb.Do(ctx, "WAIT", 1, 5000).Int(); err != nil || n != 1 {
		t.Fatalf("WAIT = %d, %v; want 1 replica", n, err)
	}
	old := s.KillPrimary()
	s.WaitFailover(old)
	if now := s.Primary(); now != s.nodes[1].addr {
		t.Fatalf("primary after failover %s, want the replica %s", now, s.nodes[1].addr)
	}
	if v, err := rdb.Get(ctx, "k").Result(); err != nil || v != "v" {
		t.Errorf("after failover k = %q, %v; want v", v, err)
	}
}

// TestCluster: keys written through a cluster client land on every node,
// and each node holds only keys of its own slots.
func TestCluster(t *testing.T) {
	c := StartCluster(t, 3)
	ctx := context.Background()
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs()})
	defer rdb.Close()
	for i := range 100 {
		if err := rdb.Set(ctx, "k"+strconv.Itoa(i), i, 0).Err(); err != nil {
			t.Fatalf("set k%d: %v", i, err)
		}
	}
	total := 0
	for _, p := range c.nodes {
		nc := p.client()
		n, err := nc.DBSize(ctx).Result()
		nc.Close()
		if err != nil || n == 0 {
			t.Errorf("%s holds %d keys (%v), want some", p.name, n, err)
		}
		total += int(n)
	}
	if total != 100 {
		t.Errorf("nodes hold %d keys in all, want 100", total)
	}
}
