package ratelimit

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/testsvc"
	"github.com/redis/go-redis/v9"
)

// helperEnv makes the test binary act as a worker process: it runs
// helperReserve instead of the tests (see TestMain).
const helperEnv = "MAILGATE_RATELIMIT_HELPER_REDIS"

func TestMain(m *testing.M) {
	if url := os.Getenv(helperEnv); url != "" {
		os.Exit(helperReserve(url))
	}
	os.Exit(m.Run())
}

// processLimit is the relay limit shared by the helper processes.
func processLimit() PolicyConfig {
	return PolicyConfig{Relay: map[string][]Limit{"r1": {Limit{Events: 10, Period: time.Minute}}}}
}

// helperReserve is one worker process: 50 Reserve calls on processLimit,
// then the number allowed on stdout.
func helperReserve(url string) int {
	opt, err := redis.ParseURL(url)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	p := NewPolicy(processLimit(), New(Config{}, rdb))
	allowed := 0
	for range 50 {
		res, err := p.Reserve(context.Background(), Request{Relay: "r1"})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if res.Allowed {
			allowed++
		}
	}
	fmt.Println(allowed)
	return 0
}

// TestReserveSharedAcrossProcesses runs two real OS processes (this test
// binary re-executed) against one budget of 10 per window.
func TestReserveSharedAcrossProcesses(t *testing.T) {
	_ = newRedis(t, true)
	url := testsvc.RedisURLDB(t, testRedisDB)
	var (
		wg   sync.WaitGroup
		outs [2]string
		errs [2]error
	)
	for i := range 2 {
		wg.Go(func() {
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), helperEnv+"="+url)
			var out []byte
			out, errs[i] = cmd.Output()
			outs[i] = strings.TrimSpace(string(out))
		})
	}
	wg.Wait()
	total := 0
	for i := range 2 {
		if errs[i] != nil {
			t.Fatalf("process %d: %v", i, errs[i])
		}
		n, err := strconv.Atoi(outs[i])
		if err != nil {
			t.Fatalf("process %d printed %q", i, outs[i])
		}
		total += n
	}
	if total != 10 {
		t.Errorf("allowed %d across processes (%v), want 10", total, outs)
	}
}
