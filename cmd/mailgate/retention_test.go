package main

import (
	"errors"
	"testing"
	"time"

	"github.com/mailgate/mailgate/config"
	"github.com/mailgate/mailgate/store"
	"github.com/mailgate/mailgate/worker"
)

// TestRetentionFromConfig: the worker gets the MAILGATE_RETENTION_* ages,
// and the configuration refuses to delete idempotency records before the
// store stops honouring them.
func TestRetentionFromConfig(t *testing.T) {
	cfg, err := config.Load([]string{"MAILGATE_RETENTION_CONTENT=1h", "MAILGATE_RETENTION_MESSAGES=2h",
		"MAILGATE_RETENTION_EVENTS=3h", "MAILGATE_RETENTION_INBOUND=0", "MAILGATE_RETENTION_IDEMPOTENCY=48h"})
	if err != nil {
		t.Fatal(err)
	}
	want := worker.Retention{Content: time.Hour, Messages: 2 * time.Hour, Events: 3 * time.Hour, Idempotency: 48 * time.Hour}
	if got := retention(cfg); got != want {
		t.Fatalf("retention = %+v, want %+v", got, want)
	}
	if _, err := config.Load([]string{"MAILGATE_RETENTION_IDEMPOTENCY=" + store.IdempotencyTTL.String()}); err != nil {
		t.Fatalf("idempotency records kept as long as they are honoured refused: %v", err)
	}
	short := (store.IdempotencyTTL - time.Second).String()
	if _, err := config.Load([]string{"MAILGATE_RETENTION_IDEMPOTENCY=" + short}); !errors.Is(err, config.ErrInvalid) {
		t.Fatalf("idempotency records kept %s, less than honoured: %v, want refused", short, err)
	}
}
