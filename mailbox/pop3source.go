package mailbox

import (
	"context"
	"fmt"
	"sync"
)

// pop3Source reads a POP3 maildrop. A POP3 session sees the maildrop as it
// was at login (RFC 1939 §8), so every Fetch starts a new session; the
// session stays open for Done (DELE needs its message numbers) and is
// closed with QUIT by Done with delete=true (committing the deletions,
// §6), by Wait (releasing the maildrop lock while waiting) and by Close.
type pop3Source struct {
	set Settings
	cfg Config

	mu     sync.Mutex
	p      *pop3Conn
	nums   map[string]int // UIDL → message number in the open session
	closed bool
}

// newPOP3Source returns an unconnected source.
func newPOP3Source(set Settings, cfg Config) *pop3Source {
	return &pop3Source{set: set, cfg: cfg}
}

// Name implements Source.
func (s *pop3Source) Name() string { return s.set.Name() }

// session returns the open session or opens one and reads its UIDL.
func (s *pop3Source) session(ctx context.Context) ([]uidlEntry, error) {
	if s.closed {
		return nil, ErrClosed
	}
	p, err := openPOP3(ctx, s.set, s.cfg)
	if err != nil {
		return nil, err
	}
	entries, err := s.uidl(ctx, p)
	if err != nil {
		_ = p.conn.Close()
		return nil, err
	}
	s.p = p
	s.nums = make(map[string]int, len(entries))
	for _, e := range entries {
		s.nums[e.UID] = e.Num
	}
	return entries, nil
}

// uidl runs UIDL bounded by ctx.
func (s *pop3Source) uidl(ctx context.Context, p *pop3Conn) ([]uidlEntry, error) {
	stop := context.AfterFunc(ctx, func() { _ = p.conn.Close() })
	defer stop()
	entries, err := p.uidl()
	return entries, ctxErr(ctx, err)
}

// endSession QUITs the open session, if any, without deleting anything
// that Done was not asked to delete.
func (s *pop3Source) endSession() error {
	if s.p == nil {
		return nil
	}
	err := s.p.quit()
	s.p, s.nums = nil, nil
	return err
}

// drop abandons the session after an error (no QUIT: nothing is committed).
func (s *pop3Source) drop() {
	if s.p != nil {
		_ = s.p.conn.Close()
		s.p, s.nums = nil, nil
	}
}

// Fetch implements Source: a new session, UIDL, LIST, then RETR of up to
// max messages whose UIDL skip does not know, in maildrop order.
func (s *pop3Source) Fetch(ctx context.Context, max int, skip func(id string) bool) ([]Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_ = s.endSession() // a new session sees mail delivered since the last one
	entries, err := s.session(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.Name(), err)
	}
	conn := s.p.conn
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	msgs, err := s.download(entries, max, skip)
	if err != nil {
		s.drop()
		return nil, fmt.Errorf("%s: %w", s.Name(), ctxErr(ctx, err))
	}
	return msgs, nil
}

// download retrieves the wanted messages of the session.
func (s *pop3Source) download(entries []uidlEntry, max int, skip func(string) bool) ([]Message, error) {
	if max <= 0 {
		max = DefaultFetchMax
	}
	var sizes map[int]int64
	var msgs []Message
	for _, e := range entries {
		if len(msgs) == max {
			break
		}
		if skip != nil && skip(e.UID) {
			continue
		}
		if sizes == nil {
			var err error
			if sizes, err = s.p.list(); err != nil {
				return nil, err
			}
		}
		raw, truncated, err := s.p.retr(e.Num, s.cfg.MaxMessageBytes)
		if err != nil {
			return nil, err
		}
		if truncated {
			s.cfg.Log.Warn("message truncated", "mailbox", s.Name(), "id", e.UID,
				"size", sizes[e.Num], "limit", s.cfg.MaxMessageBytes)
		}
		msgs = append(msgs, Message{ID: e.UID, Raw: raw})
	}
	return msgs, nil
}

// Done implements Source: with delete=true, DELE each id still in the
// maildrop and QUIT so the deletions take effect; otherwise nothing.
func (s *pop3Source) Done(ctx context.Context, ids []string) error {
	if !s.set.Delete || len(ids) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.p == nil {
		if _, err := s.session(ctx); err != nil {
			return fmt.Errorf("%s: %w", s.Name(), err)
		}
	}
	conn := s.p.conn
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	if err := s.deleteAndQuit(ids); err != nil {
		s.drop()
		return fmt.Errorf("%s: %w", s.Name(), ctxErr(ctx, err))
	}
	return nil
}

// deleteAndQuit marks the ids deleted and commits with QUIT.
func (s *pop3Source) deleteAndQuit(ids []string) error {
	for _, id := range ids {
		n, ok := s.nums[id]
		if !ok {
			continue // gone already, or never ours
		}
		if err := s.p.dele(n); err != nil {
			return err
		}
	}
	return s.endSession()
}

// Wait implements Source: end the session, then wait PollInterval.
func (s *pop3Source) Wait(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if err := s.endSession(); err != nil {
		s.cfg.Log.Info("pop3 quit", "mailbox", s.Name(), "err", err)
	}
	return sleep(ctx, s.cfg.PollInterval)
}

// Close implements Source.
func (s *pop3Source) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if err := s.endSession(); err != nil {
		return fmt.Errorf("%s: %w", s.Name(), err)
	}
	return nil
}
