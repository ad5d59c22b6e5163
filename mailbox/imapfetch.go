package mailbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// Fetch implements Source: UID SEARCH (RFC 3501 §6.4.4) for candidates,
// then one UID FETCH of BODY.PEEK[]<0.N> (§6.4.5; PEEK leaves \Seen unset).
func (s *imapSource) Fetch(ctx context.Context, max int, skip func(id string) bool) ([]Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.client(ctx)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { _ = c.Close() })
	defer stop()
	msgs, err := s.fetch(c, max, skip)
	if err != nil {
		s.drop()
		return nil, fmt.Errorf("%s: %w", s.Name(), ctxErr(ctx, err))
	}
	return msgs, nil
}

// fetch lists candidates and downloads up to max of them, oldest first.
func (s *imapSource) fetch(c *imapclient.Client, max int, skip func(string) bool) ([]Message, error) {
	if max <= 0 {
		max = DefaultFetchMax
	}
	select { // the search below sees whatever EXISTS announced
	case <-s.newMail:
	default:
	}
	criteria := &imap.SearchCriteria{NotFlag: []imap.Flag{imap.FlagDeleted}}
	if s.set.Processed == "" {
		criteria.NotFlag = append(criteria.NotFlag, imap.FlagSeen)
	}
	data, err := c.UIDSearch(criteria, nil).Wait()
	if err != nil {
		return nil, fmt.Errorf("uid search: %w", err)
	}
	var want imap.UIDSet
	n := 0
	for _, uid := range data.AllUIDs() {
		if n == max {
			break
		}
		if skip != nil && skip(s.id(uid)) {
			continue
		}
		want.AddNum(uid)
		n++
	}
	if n == 0 {
		return nil, nil
	}
	return s.download(c, want)
}

// id is "<uidvalidity>:<uid>".
func (s *imapSource) id(uid imap.UID) string {
	return strconv.FormatUint(uint64(s.uidValidity), 10) + ":" + strconv.FormatUint(uint64(uid), 10)
}

// download fetches the messages of set, at most MaxMessageBytes each.
func (s *imapSource) download(c *imapclient.Client, set imap.UIDSet) ([]Message, error) {
	opts := &imap.FetchOptions{
		UID:        true,
		RFC822Size: true,
		BodySection: []*imap.FetchItemBodySection{{
			Peek:    true,
			Partial: &imap.SectionPartial{Offset: 0, Size: s.cfg.MaxMessageBytes},
		}},
	}
	cmd := c.Fetch(set, opts)
	var msgs []Message
	for m := cmd.Next(); m != nil; m = cmd.Next() {
		msg, ok, err := s.readFetched(m)
		if err != nil {
			_ = cmd.Close()
			return nil, err
		}
		if ok {
			msgs = append(msgs, msg)
		}
	}
	if err := cmd.Close(); err != nil {
		return nil, fmt.Errorf("uid fetch: %w", err)
	}
	return msgs, nil
}

// readFetched turns one FETCH response into a Message; ok is false for a
// response without UID or body (e.g. an unsolicited flag update).
func (s *imapSource) readFetched(m *imapclient.FetchMessageData) (Message, bool, error) {
	var uid imap.UID
	var size int64
	var raw []byte
	for item := m.Next(); item != nil; item = m.Next() {
		switch it := item.(type) {
		case imapclient.FetchItemDataUID:
			uid = it.UID
		case imapclient.FetchItemDataRFC822Size:
			size = it.Size
		case imapclient.FetchItemDataBodySection:
			if it.Literal == nil {
				continue
			}
			b, err := io.ReadAll(io.LimitReader(it.Literal, s.cfg.MaxMessageBytes))
			if err != nil {
				return Message{}, false, fmt.Errorf("read body: %w", err)
			}
			raw = b
		}
	}
	if uid == 0 || raw == nil {
		return Message{}, false, nil
	}
	id := s.id(uid)
	if size > s.cfg.MaxMessageBytes {
		s.cfg.Log.Warn("message truncated", "mailbox", s.Name(), "id", id,
			"size", size, "limit", s.cfg.MaxMessageBytes)
	}
	return Message{ID: id, Raw: raw}, true, nil
}

// Done implements Source: UID STORE +FLAGS.SILENT (\Seen) (RFC 3501
// §6.4.6), then UID MOVE to the processed folder (RFC 6851 §3.2) or, with
// delete=true, \Deleted and UID EXPUNGE (RFC 4315 §2.1; plain EXPUNGE
// without UIDPLUS).
func (s *imapSource) Done(ctx context.Context, ids []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.client(ctx)
	if err != nil {
		return err
	}
	set := s.uidSet(ids)
	if len(set) == 0 {
		return nil
	}
	stop := context.AfterFunc(ctx, func() { _ = c.Close() })
	defer stop()
	if err := s.acknowledge(c, set); err != nil {
		s.drop()
		return fmt.Errorf("%s: %w", s.Name(), ctxErr(ctx, err))
	}
	return nil
}

// uidSet keeps the ids of the current UIDVALIDITY; others are stale.
func (s *imapSource) uidSet(ids []string) imap.UIDSet {
	var set imap.UIDSet
	prefix := strconv.FormatUint(uint64(s.uidValidity), 10) + ":"
	for _, id := range ids {
		rest, ok := strings.CutPrefix(id, prefix)
		uid, err := strconv.ParseUint(rest, 10, 32)
		if !ok || err != nil || uid == 0 {
			s.cfg.Log.Info("mailbox ignores id of another uidvalidity", "mailbox", s.Name(), "id", id)
			continue
		}
		set.AddNum(imap.UID(uid))
	}
	return set
}

// acknowledge flags, then moves or deletes.
func (s *imapSource) acknowledge(c *imapclient.Client, set imap.UIDSet) error {
	if err := storeFlag(c, set, imap.FlagSeen); err != nil {
		return err
	}
	switch {
	case s.set.Delete:
		if err := storeFlag(c, set, imap.FlagDeleted); err != nil {
			return err
		}
		if c.Caps().Has(imap.CapUIDPlus) {
			return c.UIDExpunge(set).Close()
		}
		return c.Expunge().Close()
	case s.set.Processed != "":
		if err := s.ensureProcessed(c); err != nil {
			return err
		}
		if _, err := c.Move(set, s.set.Processed).Wait(); err != nil {
			return fmt.Errorf("uid move to %q: %w", s.set.Processed, err)
		}
	}
	return nil
}

// storeFlag adds one flag silently.
func storeFlag(c *imapclient.Client, set imap.UIDSet, flag imap.Flag) error {
	store := &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{flag}}
	if err := c.Store(set, store, nil).Close(); err != nil {
		return fmt.Errorf("uid store %s: %w", flag, err)
	}
	return nil
}

// ensureProcessed creates the processed folder once per connection;
// ALREADYEXISTS (RFC 5530 §3) is success.
func (s *imapSource) ensureProcessed(c *imapclient.Client) error {
	if s.folderReady {
		return nil
	}
	err := c.Create(s.set.Processed, nil).Wait()
	var ierr *imap.Error
	if err != nil && !(errors.As(err, &ierr) && ierr.Code == imap.ResponseCodeAlreadyExists) {
		return fmt.Errorf("create %q: %w", s.set.Processed, err)
	}
	s.folderReady = true
	return nil
}

// Wait implements Source: IDLE (RFC 2177) until EXISTS, IdleTimeout or
// ctx; without IDLE, PollInterval.
func (s *imapSource) Wait(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.client(ctx)
	if err != nil {
		return err
	}
	select {
	case <-s.newMail:
		return nil
	default:
	}
	if !c.Caps().Has(imap.CapIdle) {
		return sleep(ctx, s.cfg.PollInterval)
	}
	if err := s.idle(ctx, c); err != nil {
		s.drop()
		return fmt.Errorf("%s: %w", s.Name(), ctxErr(ctx, err))
	}
	return ctx.Err()
}

// idle runs one IDLE until something happens, then sends DONE.
func (s *imapSource) idle(ctx context.Context, c *imapclient.Client) error {
	cmd, err := c.Idle()
	if err != nil {
		return fmt.Errorf("idle: %w", err)
	}
	timer := time.NewTimer(s.cfg.IdleTimeout)
	defer timer.Stop()
	select {
	case <-s.newMail:
	case <-timer.C:
	case <-ctx.Done():
	case <-c.Closed():
		return fmt.Errorf("idle: connection closed")
	}
	if err := cmd.Close(); err != nil {
		return fmt.Errorf("idle done: %w", err)
	}
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("idle: %w", err)
	}
	return nil
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
