package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/dbfault"
	"github.com/mailgate/mailgate/internal/testsvc"
)

// TestGroupWrite checks one group holding a clean message, a message with
// a suppressed recipient, one whose idempotency key is no longer in
// flight and one finishing a live key: the one with the lost key gets its
// error and writes nothing, the others are committed (the suppressed
// recipient as suppressed) with their keys finished.
func TestGroupWrite(t *testing.T) {
	engines(t, func(t *testing.T, s *Store, clk *clock) {
		ctx := context.Background()
		if _, err := s.UpsertSuppression(ctx, Suppression{ProjectID: DefaultProjectID, Email: "gone@example.com", Reason: "manual"}); err != nil {
			t.Fatalf("suppress: %v", err)
		}
		live := claimed(t, s, "live", 202, `{"id":"live"}`)
		lost := &IdempotencyResult{KeyID: "k1", Key: "never-claimed", Token: "t", Respond: fixed(202, `{}`)}
		reqs := []struct {
			msg        NewMessage
			idem       *IdempotencyResult
			wantErr    error
			wantStatus string
		}{
			{newMsg("clean", clk.Now(), "a@example.org"), nil, nil, StatusQueued},
			{newMsg("suppressed", clk.Now(), "b@example.org", "Gone@Example.com"), nil, nil, StatusQueued},
			{newMsg("lost", clk.Now(), "c@example.org"), lost, ErrIdempotencyLost, ""},
			{newMsg("live", clk.Now(), "d@example.org"), live, nil, StatusQueued},
		}
		group := make([]*commitRequest, len(reqs))
		for i, r := range reqs {
			group[i] = &commitRequest{msg: r.msg, idem: r.idem, done: make(chan commitDone, 1)}
		}
		s.writeCommits(ctx, group)
		for i, r := range reqs {
			t.Run(r.msg.ID, func(t *testing.T) {
				d := <-group[i].done
				if !errors.Is(d.err, r.wantErr) {
					t.Fatalf("commit = %v, want %v", d.err, r.wantErr)
				}
				if d.res.BatchID != "" || d.res.Batch != nil {
					t.Errorf("committed on its own after the group failed, yet in batch %+v", d.res)
				}
				m, getErr := s.GetMessage(ctx, DefaultProjectID, r.msg.ID)
				if written := getErr == nil; written != (r.wantErr == nil) {
					t.Errorf("message written = %v (%v), want %v", written, getErr, r.wantErr == nil)
				}
				if d.res.Status != r.wantStatus || (getErr == nil && m.Status != r.wantStatus) {
					t.Errorf("status %q, stored %q; want %q", d.res.Status, m.Status, r.wantStatus)
				}
			})
		}
		m, err := s.GetMessage(ctx, DefaultProjectID, "suppressed")
		if err != nil || m.Recipients[1].Status != StatusSuppressed {
			t.Errorf("suppressed recipient stored as %+v, %v; want suppressed", m.Recipients, err)
		}
		got, err := s.ClaimIdempotencyKey(ctx, "k1", "live", []byte("h"), time.Minute)
		if err != nil {
			t.Fatalf("claim again: %v", err)
		}
		if got.Fresh || got.InFlight || got.ResponseCode != 202 || string(got.ResponseBody) != `{"id":"live"}` {
			t.Errorf("live key = %+v, want finished with the response", got)
		}
	})
}

// TestCommitMessageConcurrent commits many messages from concurrent
// callers, each finishing its own idempotency key: every one is committed
// once with its recipients and events, and every key is finished with its
// own response, however the calls were grouped. The messages of a group
// share one batch: each batch's ids go to exactly one caller and are
// exactly the messages stored with that batch id.
func TestCommitMessageConcurrent(t *testing.T) {
	engines(t, func(t *testing.T, s *Store, clk *clock) {
		ctx := context.Background()
		const n = 120
		errs := make([]error, n)
		results := make([]Created, n)
		var wg sync.WaitGroup
		for i := range n {
			key := fmt.Sprintf("key-%03d", i)
			msg := newMsg(fmt.Sprintf("m-%03d", i), clk.Now(), "a@example.org", fmt.Sprintf("r%d@example.net", i))
			idem := claimed(t, s, key, 202, msg.ID)
			wg.Go(func() {
				results[i], errs[i] = s.CommitMessage(ctx, msg, idem)
			})
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("commit %d: %v", i, err)
			}
			id := fmt.Sprintf("m-%03d", i)
			m, err := s.GetMessage(ctx, DefaultProjectID, id)
			if err != nil {
				t.Fatalf("get %s: %v", id, err)
			}
			if len(m.Recipients) != 2 || m.Status != StatusQueued {
				t.Errorf("%s: %d recipients, status %s; want 2, queued", id, len(m.Recipients), m.Status)
			}
			k, err := s.ClaimIdempotencyKey(ctx, "k1", fmt.Sprintf("key-%03d", i), []byte("h"), time.Minute)
			if err != nil || k.Fresh || k.InFlight || string(k.ResponseBody) != id {
				t.Errorf("key %d = %+v, %v; want finished with %s", i, k, err, id)
			}
			events, _, err := s.ListEvents(ctx, DefaultProjectID, EventFilter{MessageID: id, Page: Page{Limit: 10}})
			if err != nil || len(events) != 2 {
				t.Errorf("%s: %d events (%v), want 2 message.queued", id, len(events), err)
			}
		}
		checkBatches(t, s, results, clk.Now().Add(time.Minute))
	})
}

// checkBatches: every batch of results is listed by exactly one result
// (its first message), with exactly the messages stored with its id.
func checkBatches(t *testing.T, s *Store, results []Created, before time.Time) {
	t.Helper()
	refs, err := s.MessagesAwaitingTask(context.Background(), before, 10000)
	if err != nil {
		t.Fatal(err)
	}
	stored := map[string][]string{}
	for _, r := range refs {
		if r.BatchID != "" {
			stored[r.BatchID] = append(stored[r.BatchID], r.ID)
		}
	}
	listed := map[string][]string{}
	members := 0
	for _, r := range results {
		if r.BatchID != "" {
			members++
		}
		if r.Batch != nil {
			if listed[r.BatchID] != nil || r.BatchID != BatchID(r.Batch[0]) {
				t.Errorf("batch %s listed twice or misnamed (first %s)", r.BatchID, r.Batch[0])
			}
			listed[r.BatchID] = r.Batch
		}
	}
	n := 0
	for id, ids := range stored {
		n += len(ids)
		got := slices.Clone(listed[id])
		slices.Sort(got)
		slices.Sort(ids)
		if !slices.Equal(got, ids) {
			t.Errorf("batch %s: stored %v, listed %v", id, ids, listed[id])
		}
	}
	if n != members || len(listed) != len(stored) {
		t.Errorf("%d messages in %d stored batches, %d results in a batch, %d listed", n, len(stored), members, len(listed))
	}
	t.Logf("%d of %d messages in %d batches", members, len(results), len(listed))
}

// TestGroupUnavailableIsNotWrittenAlone: a group whose write failed
// because the database was unavailable (or its commit's outcome is
// unknown) may have committed, so its messages all get that error and are
// not written again one by one; a group that failed otherwise is.
func TestGroupUnavailableIsNotWrittenAlone(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for name, url := range testsvc.DatabaseURLs(t) {
		t.Run(name, func(t *testing.T) {
			f := &dbfault.Faults{}
			clk := newClock()
			s, err := Open(ctx, Config{URL: url, Now: clk.Now, WrapConnector: f.Wrap})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.Close() })
			if err := s.MigrateUp(ctx); err != nil {
				t.Fatal(err)
			}
			for _, tc := range []struct {
				name      string
				fault     error
				wantAlone bool // written one by one after the group failed
			}{
				{"unavailable", fmt.Errorf("connection refused: %w", ErrUnavailable), false},
				{"commit unknown", fmt.Errorf("connection lost: %w", errors.Join(ErrUnavailable, ErrCommitUnknown)), false},
				{"another error", errors.New("injected constraint failure"), true},
			} {
				t.Run(tc.name, func(t *testing.T) {
					group := []*commitRequest{
						{msg: newMsg(tc.name+"-1", clk.Now(), "a@example.org"), done: make(chan commitDone, 1)},
						{msg: newMsg(tc.name+"-2", clk.Now(), "b@example.org"), done: make(chan commitDone, 1)},
					}
					fired := f.Fired()
					f.FailStatement("INSERT INTO messages (id", tc.fault)
					s.writeCommits(ctx, group)
					if f.Fired() == fired {
						t.Fatal("the group's write never ran")
					}
					for _, r := range group {
						d := <-r.done
						_, getErr := s.GetMessage(ctx, DefaultProjectID, r.msg.ID)
						if tc.wantAlone {
							if d.err != nil || getErr != nil {
								t.Errorf("%s: commit %v, stored %v; want written on its own", r.msg.ID, d.err, getErr)
							}
							continue
						}
						if !errors.Is(d.err, tc.fault) || !errors.Is(getErr, ErrNotFound) {
							t.Errorf("%s: commit %v, stored %v; want the group's error and nothing written again", r.msg.ID, d.err, getErr)
						}
					}
				})
			}
		})
	}
}
