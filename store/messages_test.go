package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestCreateAndGetMessage(t *testing.T) {
	engines(t, func(t *testing.T, s *Store, clk *clock) {
		ctx := context.Background()
		now := clk.Now()
		sendAt := now.Add(2 * time.Hour)
		m := newMsg("m1", time.Time{}, "Ann@Example.org", "bob@example.net")
		m.Recipients[1].Kind = KindCc
		m.Recipients = append(m.Recipients, NewRecipient{Email: "gone@example.com", Kind: KindBcc, Status: StatusSuppressed})
		m.Recipients[0].Status, m.Recipients[1].Status = StatusScheduled, StatusScheduled
		m.SendAt = &sendAt
		if _, err := s.CreateMessages(ctx, []NewMessage{m}, nil); err != nil {
			t.Fatalf("create: %v", err)
		}
		got, err := s.GetMessage(ctx, DefaultProjectID, "m1")
		if err != nil {
			t.Fatalf("get: %v", err)
		}
		want := Message{
			ID: "m1", ProjectID: DefaultProjectID, KeyID: "k1", From: m.From, FromDomain: "shop.example",
			Subject: "Order m1", Status: StatusScheduled, Tags: []string{"order"},
			Metadata: map[string]string{"order_id": "m1"}, SendAt: &sendAt, CreatedAt: now, UpdatedAt: now,
			Recipients: []Recipient{
				{Email: "Ann@Example.org", Kind: KindTo, Status: StatusScheduled, UpdatedAt: now},
				{Email: "bob@example.net", Kind: KindCc, Status: StatusScheduled, UpdatedAt: now},
				{Email: "gone@example.com", Kind: KindBcc, Status: StatusSuppressed, UpdatedAt: now},
			},
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("GetMessage (-want +got):\n%s", diff)
		}
		evs, err := s.MessageEvents(ctx, DefaultProjectID, "m1")
		if err != nil {
			t.Fatalf("events: %v", err)
		}
		sched := fmt.Sprintf(`{"send_at":%q}`, sendAt.Format(time.RFC3339Nano))
		tags, md := []string{"order"}, map[string]string{"order_id": "m1"}
		wantEvs := []Event{
			{ProjectID: DefaultProjectID, MessageID: "m1", Recipient: "Ann@Example.org", Type: EventQueued, Sequence: 1, Data: json.RawMessage(sched), Tags: tags, Metadata: md, CreatedAt: now},
			{ProjectID: DefaultProjectID, MessageID: "m1", Recipient: "bob@example.net", Type: EventQueued, Sequence: 2, Data: json.RawMessage(sched), Tags: tags, Metadata: md, CreatedAt: now},
			{ProjectID: DefaultProjectID, MessageID: "m1", Recipient: "gone@example.com", Type: EventSuppressed, Sequence: 3, Data: json.RawMessage(`{}`), Tags: tags, Metadata: md, CreatedAt: now},
		}
		if diff := cmp.Diff(wantEvs, evs, cmpopts.IgnoreFields(Event{}, "ID")); diff != "" {
			t.Errorf("MessageEvents (-want +got):\n%s", diff)
		}
	})
}

func TestProjectIsolation(t *testing.T) {
	engines(t, func(t *testing.T, s *Store, clk *clock) {
		ctx := context.Background()
		other, err := s.CreateProject(ctx, "other")
		if err != nil {
			t.Fatalf("create project: %v", err)
		}
		if _, err := s.CreateMessages(ctx, []NewMessage{newMsg("m1", clk.Now(), "a@example.org")}, nil); err != nil {
			t.Fatalf("create: %v", err)
		}
		if _, err := s.GetMessage(ctx, other.ID, "m1"); !errors.Is(err, ErrNotFound) {
			t.Errorf("get from other project = %v, want ErrNotFound", err)
		}
		if _, err := s.CancelMessage(ctx, other.ID, "m1"); !errors.Is(err, ErrNotFound) {
			t.Errorf("cancel from other project = %v, want ErrNotFound", err)
		}
		msgs, _, err := s.ListMessages(ctx, other.ID, MessageFilter{})
		if err != nil || len(msgs) != 0 {
			t.Errorf("list other project = %d messages, %v; want none", len(msgs), err)
		}
		evs, err := s.MessageEvents(ctx, other.ID, "m1")
		if err != nil || len(evs) != 0 {
			t.Errorf("events from other project = %d, %v; want none", len(evs), err)
		}
		evs, _, err = s.ListEvents(ctx, other.ID, EventFilter{})
		if err != nil || len(evs) != 0 {
			t.Errorf("event feed of other project = %d, %v; want none", len(evs), err)
		}
	})
}

func TestCreateMessagesAtomic(t *testing.T) {
	engines(t, func(t *testing.T, s *Store, clk *clock) {
		ctx := context.Background()
		if _, err := s.CreateMessages(ctx, []NewMessage{newMsg("dup", clk.Now(), "a@example.org")}, nil); err != nil {
			t.Fatalf("create: %v", err)
		}
		idem := claimed(t, s, "idem", 202, "{}")
		batch := []NewMessage{
			newMsg("new1", clk.Now(), "b@example.org"),
			newMsg("dup", clk.Now(), "c@example.org"),
		}
		if _, err := s.CreateMessages(ctx, batch, idem); err == nil {
			t.Fatal("batch with a duplicate id was accepted")
		}
		if _, err := s.GetMessage(ctx, DefaultProjectID, "new1"); !errors.Is(err, ErrNotFound) {
			t.Errorf("new1 after failed batch: %v, want ErrNotFound", err)
		}
		msgs, _, err := s.ListMessages(ctx, DefaultProjectID, MessageFilter{Recipient: "b@example.org"})
		if err != nil || len(msgs) != 0 {
			t.Errorf("recipient rows of failed batch: %d, %v", len(msgs), err)
		}
		evs, _, err := s.ListEvents(ctx, DefaultProjectID, EventFilter{})
		if err != nil || len(evs) != 1 {
			t.Errorf("events after failed batch = %d, %v; want 1", len(evs), err)
		}
		st, err := s.ClaimIdempotencyKey(ctx, "k1", "idem", []byte("h"), time.Minute)
		if err != nil || !st.InFlight {
			t.Errorf("idempotency key after failed batch = %+v, %v; want still in flight", st, err)
		}
		bad := newMsg("bad", clk.Now(), "d@example.org")
		bad.Recipients[0].Status = StatusSent
		if _, err := s.CreateMessages(ctx, []NewMessage{bad}, nil); err == nil {
			t.Error("recipient status sent accepted at creation")
		}
	})
}

func TestCreateMessagesFinishesIdempotency(t *testing.T) {
	engines(t, func(t *testing.T, s *Store, clk *clock) {
		ctx := context.Background()
		if _, err := s.UpsertSuppression(ctx, Suppression{ProjectID: DefaultProjectID, Email: "gone@example.com", Reason: "manual"}); err != nil {
			t.Fatalf("suppress: %v", err)
		}
		// The response is built from the statuses the transaction decided.
		idem := claimed(t, s, "with-msgs", 0, "")
		idem.Respond = func(cs []Created) (int, []byte, error) {
			return 202, []byte(fmt.Sprintf("%s %s %v", cs[0].ID, cs[0].Status, cs[0].Recipients)), nil
		}
		if _, err := s.CreateMessages(ctx, []NewMessage{newMsg("m1", clk.Now(), "a@example.org", "Gone@example.com")}, idem); err != nil {
			t.Fatalf("create: %v", err)
		}
		empty := claimed(t, s, "empty", 200, `{"results":[]}`)
		if _, err := s.CreateMessages(ctx, nil, empty); err != nil {
			t.Fatalf("create none: %v", err)
		}
		for key, want := range map[string]IdempotencyState{
			"with-msgs": {RequestHash: []byte("h"), ResponseCode: 202, ResponseBody: []byte("m1 queued [queued suppressed]")},
			"empty":     {RequestHash: []byte("h"), ResponseCode: 200, ResponseBody: []byte(`{"results":[]}`)},
		} {
			st, err := s.ClaimIdempotencyKey(ctx, "k1", key, []byte("other"), time.Minute)
			if err != nil {
				t.Fatalf("claim again: %v", err)
			}
			if diff := cmp.Diff(want, st); diff != "" {
				t.Errorf("%s (-want +got):\n%s", key, diff)
			}
		}
		lost := &IdempotencyResult{KeyID: "k1", Key: "never-claimed", Respond: fixed(202, "")}
		_, err := s.CreateMessages(ctx, []NewMessage{newMsg("m2", clk.Now(), "a@example.org")}, lost)
		if !errors.Is(err, ErrIdempotencyLost) {
			t.Errorf("finishing an unclaimed key = %v, want ErrIdempotencyLost", err)
		}
		if _, err := s.GetMessage(ctx, DefaultProjectID, "m2"); !errors.Is(err, ErrNotFound) {
			t.Errorf("m2 written despite lost key: %v", err)
		}
	})
}

func TestMessagesAwaitingTask(t *testing.T) {
	engines(t, func(t *testing.T, s *Store, clk *clock) {
		ctx := context.Background()
		t0 := clk.Now()
		sendAt := t0.Add(24 * time.Hour)
		sched := newMsg("m2", t0.Add(2*time.Second), "b@example.org")
		sched.Recipients[0].Status = StatusScheduled
		sched.SendAt = &sendAt
		supp := newMsg("m3", t0.Add(3*time.Second), "c@example.org")
		supp.Recipients[0].Status = StatusSuppressed
		msgs := []NewMessage{
			newMsg("m1", t0.Add(time.Second), "a@example.org"), sched, supp,
			newMsg("m4", t0.Add(4*time.Second), "d@example.org"),
			newMsg("m5", t0.Add(time.Minute), "e@example.org"),
		}
		if _, err := s.CreateMessages(ctx, msgs, nil); err != nil {
			t.Fatalf("create: %v", err)
		}
		if _, err := s.CancelMessage(ctx, DefaultProjectID, "m4"); err != nil {
			t.Fatalf("cancel: %v", err)
		}
		got, err := s.MessagesAwaitingTask(ctx, t0.Add(time.Minute), 10)
		if err != nil {
			t.Fatalf("awaiting: %v", err)
		}
		// m1 and m4, created together to be sent now, share a batch.
		want := []QueuedRef{{ID: "m1", BatchID: "batch:m1"}, {ID: "m2", SendAt: &sendAt}}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("MessagesAwaitingTask (-want +got):\n%s", diff)
		}
		got, err = s.MessagesAwaitingTask(ctx, t0.Add(time.Hour), 1)
		if err != nil || len(got) != 1 || got[0].ID != "m1" {
			t.Errorf("limit 1 = %+v, %v; want m1 only", got, err)
		}
	})
}

// TestCreateLargeBatch writes a group far past the bind-parameter limits
// of a multi-row INSERT: PostgreSQL takes it as arrays, SQLite row by row.
func TestCreateLargeBatch(t *testing.T) {
	engines(t, func(t *testing.T, s *Store, clk *clock) {
		ctx := context.Background()
		emails := make([]string, 10)
		for i := range emails {
			emails[i] = fmt.Sprintf("r%d@example.org", i)
		}
		msgs := make([]NewMessage, 500)
		for i := range msgs {
			msgs[i] = newMsg(fmt.Sprintf("big%03d", i), clk.Now(), emails...)
		}
		idem := claimed(t, s, "big", 200, "")
		if _, err := s.CreateMessages(ctx, msgs, idem); err != nil {
			t.Fatalf("create: %v", err)
		}
		got, err := s.GetMessage(ctx, DefaultProjectID, "big499")
		if err != nil || len(got.Recipients) != 10 || got.Recipients[9].Email != "r9@example.org" {
			t.Fatalf("last message = %+v, %v", got, err)
		}
		evs, _, err := s.ListEvents(ctx, DefaultProjectID, EventFilter{Recipient: "r9@example.org", Page: Page{Limit: 1000}})
		if err != nil || len(evs) != 500 {
			t.Errorf("events for r9 = %d, %v; want 500", len(evs), err)
		}
		st, err := s.ClaimIdempotencyKey(ctx, "k1", "big", []byte("h"), time.Minute)
		if err != nil || st.ResponseCode != 200 {
			t.Errorf("idempotency after large batch = %+v, %v", st, err)
		}
	})
}
