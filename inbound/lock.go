package inbound

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// The lock is one Redis key per mailbox holding a random token, set with
// SET NX PX and renewed or released only by the holder of the token (the
// single-instance lock described in the Redis SET documentation).
var (
	// renewScript extends the key's expiry when it still holds our token.
	renewScript = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then
	return redis.call("PEXPIRE", KEYS[1], ARGV[2]) else return 0 end`)
	// releaseScript deletes the key when it still holds our token.
	releaseScript = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then
	return redis.call("DEL", KEYS[1]) else return 0 end`)
)

// mailboxLock is a held lock on one mailbox.
type mailboxLock struct {
	rdb   redis.UniversalClient
	key   string
	token string
	ttl   time.Duration
}

// tryLock takes the lock if it is free.
func (p *Poller) tryLock(ctx context.Context, name string) (*mailboxLock, bool, error) {
	token, err := p.cfg.NewToken()
	if err != nil {
		return nil, false, fmt.Errorf("lock token: %w", err)
	}
	l := &mailboxLock{rdb: p.deps.Redis, key: p.cfg.LockPrefix + name, token: token, ttl: p.cfg.LockTTL}
	ok, err := l.rdb.SetNX(ctx, l.key, token, l.ttl).Result()
	if err != nil {
		return nil, false, fmt.Errorf("lock mailbox %s: %w", name, err)
	}
	return l, ok, nil
}

// lock waits until it holds the mailbox's lock, trying every LockRetry;
// it returns ctx's error when ctx ends first.
func (p *Poller) lock(ctx context.Context, name string) (*mailboxLock, error) {
	logged := false
	for {
		l, ok, err := p.tryLock(ctx, name)
		if ok {
			return l, nil
		}
		if err != nil {
			p.deps.Log.Warn("poller lock", "mailbox", name, "err", err)
		} else if !logged {
			p.deps.Log.Info("poller waiting: another poller holds the mailbox", "mailbox", name)
			logged = true
		}
		t := time.NewTimer(p.cfg.LockRetry)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

// errLockLost: the lock expired or was taken while we held it.
var errLockLost = errors.New("mailbox lock lost")

// renew keeps the lock alive every ttl/3 until ctx ends. When another
// poller holds the key, or Redis has not answered for a whole ttl (the key
// may have expired meanwhile), it calls lost and returns.
func (l *mailboxLock) renew(ctx context.Context, lost func(error)) {
	t := time.NewTicker(l.ttl / 3)
	defer t.Stop()
	lastOK := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := renewScript.Run(ctx, l.rdb, []string{l.key}, l.token, l.ttl.Milliseconds()).Int()
		switch {
		case ctx.Err() != nil:
			return
		case err == nil && n == 1:
			lastOK = time.Now()
		case err == nil || time.Since(lastOK) >= l.ttl:
			lost(errors.Join(errLockLost, err))
			return
		}
	}
}

// release frees the lock if we still hold it.
func (l *mailboxLock) release() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := releaseScript.Run(ctx, l.rdb, []string{l.key}, l.token).Err(); err != nil {
		return fmt.Errorf("release %s: %w", l.key, err)
	}
	return nil
}
