package ratelimit

import (
	"context"
	"errors"
	"net"
	"testing"

	"github.com/redis/go-redis/v9"
)

// TestAllowRedisGone: a check Redis cannot answer (connections refused)
// is ErrUnavailable; the caller's own cancellation is not.
func TestAllowRedisGone(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close() // nothing listens there any more
	rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	t.Cleanup(func() { _ = rdb.Close() })
	l := New(Config{}, rdb)

	_, err = l.Allow(context.Background(), "key", "k1", PerSecond(10))
	if !errors.Is(err, ErrUnavailable) {
		t.Errorf("Allow with Redis gone = %v, want ErrUnavailable", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = l.Allow(ctx, "key", "k1", PerSecond(10))
	if err == nil || errors.Is(err, ErrUnavailable) {
		t.Errorf("Allow with a cancelled context = %v, want an error that is not ErrUnavailable", err)
	}
}
