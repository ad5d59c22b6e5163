package main

import (
	"context"
	"fmt"

	"github.com/mailgate/mailgate/inbound"
	"github.com/mailgate/mailgate/mailbox"
	"github.com/mailgate/mailgate/verp"
)

// runPoller reads the MAILGATE_MAILBOXES mailboxes until ctx ends. Without
// mailboxes it only waits, so that `serve` stays one command.
func (a *app) runPoller(ctx context.Context) error {
	if len(a.cfg.Mailboxes) == 0 {
		a.log.Info("poller idle: MAILGATE_MAILBOXES is empty")
		<-ctx.Done()
		return nil
	}
	if a.cfg.ReturnPathDomain == "" {
		a.log.Warn("MAILGATE_RETURN_PATH_DOMAIN is empty: bounces are tied to messages by Message-ID only")
	}
	rules, err := loadBounceRules(a.cfg.BounceRules)
	if err != nil {
		return err
	}
	sources, err := a.openMailboxes()
	if err != nil {
		return err
	}
	metrics := a.inbound
	p, err := inbound.New(inbound.Config{SoftBounceLimit: a.cfg.SoftBounceLimit, BounceRules: rules}, inbound.Deps{
		Store: a.store, Redis: a.redis, VERP: verp.New(a.keyring, a.cfg.ReturnPathDomain),
		Sources: sources, Metrics: metrics, Log: a.log,
	})
	if err != nil {
		closeSources(sources)
		return err
	}
	a.log.Info("poller starting", "mailboxes", len(sources))
	return p.Run(ctx)
}

// openMailboxes opens every configured mailbox (no network I/O yet).
// Errors name the entry by position: the URL may carry a password.
func (a *app) openMailboxes() ([]inbound.Source, error) {
	var sources []inbound.Source
	for i, raw := range a.cfg.Mailboxes {
		src, err := mailbox.Open(raw, mailbox.Config{Log: a.log})
		if err != nil {
			closeSources(sources)
			return nil, fmt.Errorf("MAILGATE_MAILBOXES entry %d: %w", i+1, err)
		}
		sources = append(sources, src)
	}
	return sources, nil
}

func closeSources(sources []inbound.Source) {
	for _, s := range sources {
		_ = s.Close()
	}
}
