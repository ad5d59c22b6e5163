package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// sentMessages creates messages to the addresses, each with every
// recipient sent.
func sentMessages(t *testing.T, s *Store, clk *clock, ids []string, emails ...string) {
	t.Helper()
	var msgs []NewMessage
	for _, id := range ids {
		msgs = append(msgs, newMsg(id, clk.Now(), emails...))
	}
	if _, err := s.CreateMessages(context.Background(), msgs, nil); err != nil {
		t.Fatalf("create: %v", err)
	}
	for _, id := range ids {
		positions := make([]int, len(emails))
		for i := range emails {
			positions[i] = i
		}
		setRecipientStatus(t, s, id, StatusSent, positions...)
	}
}

func bounceRecord(mailboxID, messageID string, pos int, email string, hard bool) InboundRecord {
	ef := InboundEffect{Position: pos, Email: email, Status: StatusBounced, Event: EventBounced,
		EventData: json.RawMessage(`{"type":"soft"}`), SoftBounce: !hard}
	if hard {
		ef.EventData, ef.Suppress = json.RawMessage(`{"type":"hard"}`), ReasonHardBounce
	}
	return InboundRecord{Mailbox: "bounces", MailboxMessageID: mailboxID, Kind: "bounce",
		ProjectID: DefaultProjectID, MessageID: messageID, Recipient: email, Authenticated: true,
		Summary: json.RawMessage(`{"kind":"bounce"}`), RawSize: 100, RawHead: []byte("raw"),
		Effects: []InboundEffect{ef}}
}

func eventSummary(t *testing.T, s *Store, id string) []string {
	t.Helper()
	evs, err := s.MessageEvents(context.Background(), DefaultProjectID, id)
	if err != nil {
		t.Fatalf("events: %v", err)
	}
	var out []string
	for _, ev := range evs {
		out = append(out, fmt.Sprintf("%d %s %s %s", ev.Sequence, ev.Type, ev.Recipient, ev.Data))
	}
	return out
}

func TestRecordInboundHardBounce(t *testing.T) {
	engines(t, func(t *testing.T, s *Store, clk *clock) {
		ctx := context.Background()
		sentMessages(t, s, clk, []string{"m1"}, "a@example.org", "B@example.org")
		rec := bounceRecord("uid-1", "m1", 1, "B@example.org", true)
		for i, want := range []InboundResult{
			{Effects: []EffectResult{{Applied: true, Suppressed: ReasonHardBounce}}},
			{Duplicate: true},
		} {
			got, err := s.RecordInbound(ctx, rec)
			if err != nil {
				t.Fatalf("record %d: %v", i, err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("record %d (-want +got):\n%s", i, diff)
			}
		}
		// Another report about the same recipient is kept but changes nothing.
		again, err := s.RecordInbound(ctx, bounceRecord("uid-2", "m1", 1, "B@example.org", true))
		if err != nil {
			t.Fatalf("record again: %v", err)
		}
		if diff := cmp.Diff(InboundResult{Effects: []EffectResult{{}}}, again); diff != "" {
			t.Errorf("second report (-want +got):\n%s", diff)
		}
		m, err := s.GetMessage(ctx, DefaultProjectID, "m1")
		if err != nil {
			t.Fatalf("get: %v", err)
		}
		if diff := cmp.Diff([]string{StatusSent, StatusBounced}, recipientStatuses(m)); diff != "" {
			t.Errorf("statuses (-want +got):\n%s", diff)
		}
		if m.Status != StatusPartial {
			t.Errorf("message status %q, want partial", m.Status)
		}
		wantEvs := []string{"1 message.queued a@example.org {}", "2 message.queued B@example.org {}",
			`3 message.bounced B@example.org {"type":"hard"}`}
		if diff := cmp.Diff(wantEvs, eventSummary(t, s, "m1")); diff != "" {
			t.Errorf("events (-want +got):\n%s", diff)
		}
		sp, err := s.GetSuppression(ctx, DefaultProjectID, "b@example.org")
		if err != nil || sp.Reason != ReasonHardBounce {
			t.Errorf("suppression = %+v, %v; want hard_bounce", sp, err)
		}
		seen, err := s.InboundSeen(ctx, "bounces", "uid-1")
		if err != nil || !seen {
			t.Errorf("InboundSeen(uid-1) = %v, %v; want true", seen, err)
		}
	})
}

func TestRecordInboundSoftBounces(t *testing.T) {
	engines(t, func(t *testing.T, s *Store, clk *clock) {
		ctx := context.Background()
		ids := []string{"m1", "m2", "m3", "m4"}
		sentMessages(t, s, clk, ids, "soft@example.org")
		steps := []struct {
			mailboxID, messageID string
			wantCount            int
			wantSuppressed       string
		}{
			{"u1", "m1", 1, ""},
			{"u2", "m2", 2, ""},
			{"u3", "m3", 0, ReasonSoftBounces},
		}
		for _, st := range steps {
			t.Run(st.mailboxID, func(t *testing.T) {
				res, err := s.RecordInbound(ctx, bounceRecord(st.mailboxID, st.messageID, 0, "soft@example.org", false))
				if err != nil {
					t.Fatalf("record: %v", err)
				}
				if got := res.Effects[0].Suppressed; got != st.wantSuppressed {
					t.Errorf("suppressed %q, want %q", got, st.wantSuppressed)
				}
				n, err := s.SoftBounceCount(ctx, DefaultProjectID, "Soft@example.org")
				if err != nil || n != st.wantCount {
					t.Errorf("count = %d, %v; want %d", n, err, st.wantCount)
				}
			})
		}
		if _, err := s.GetSuppression(ctx, DefaultProjectID, "soft@example.org"); err != nil {
			t.Errorf("soft_bounces suppression missing: %v", err)
		}
	})
}

func TestRecordInboundSoftBounceReset(t *testing.T) {
	engines(t, func(t *testing.T, s *Store, clk *clock) {
		ctx := context.Background()
		sentMessages(t, s, clk, []string{"m1", "m2"}, "x@example.org")
		if _, err := s.RecordInbound(ctx, bounceRecord("u1", "m1", 0, "x@example.org", false)); err != nil {
			t.Fatalf("record: %v", err)
		}
		reply := InboundRecord{Mailbox: "bounces", MailboxMessageID: "u2", Kind: "reply",
			ProjectID: DefaultProjectID, MessageID: "m2", Recipient: "x@example.org", Authenticated: true,
			Effects: []InboundEffect{{Position: 0, Email: "x@example.org", Event: EventReplied,
				EventData: json.RawMessage(`{"text":"hi"}`), ResetSoftBounces: true}}}
		res, err := s.RecordInbound(ctx, reply)
		if err != nil {
			t.Fatalf("record reply: %v", err)
		}
		if !res.Effects[0].Applied {
			t.Errorf("reply not applied")
		}
		if n, err := s.SoftBounceCount(ctx, DefaultProjectID, "x@example.org"); err != nil || n != 0 {
			t.Errorf("count after reply = %d, %v; want 0", n, err)
		}
		m, err := s.GetMessage(ctx, DefaultProjectID, "m2")
		if err != nil || m.Status != StatusSent {
			t.Errorf("reply changed status: %q, %v", m.Status, err)
		}
		want := []string{"1 message.queued x@example.org {}", `2 message.replied x@example.org {"text":"hi"}`}
		if diff := cmp.Diff(want, eventSummary(t, s, "m2")); diff != "" {
			t.Errorf("events (-want +got):\n%s", diff)
		}
	})
}

func TestListInbound(t *testing.T) {
	engines(t, func(t *testing.T, s *Store, clk *clock) {
		ctx := context.Background()
		sentMessages(t, s, clk, []string{"m1"}, "a@example.org")
		other, err := s.CreateProject(ctx, "other")
		if err != nil {
			t.Fatalf("project: %v", err)
		}
		recs := []InboundRecord{
			{ID: "i1", Mailbox: "mb", MailboxMessageID: "1", Kind: "unknown", RawSize: 5},
			bounceRecord("2", "m1", 0, "a@example.org", true),
			{ID: "i3", Mailbox: "mb", MailboxMessageID: "3", Kind: "delayed", RawSize: 7},
		}
		recs[1].ID = "i2"
		recs[0].Authenticated = true // unmatched: stored as not authenticated
		for _, r := range recs {
			clk.Advance(time.Second)
			if _, err := s.RecordInbound(ctx, r); err != nil {
				t.Fatalf("record %s: %v", r.ID, err)
			}
		}
		yes, no := true, false
		cases := []struct {
			name string
			f    InboundFilter
			want []string
		}{
			{"project only", InboundFilter{ProjectID: DefaultProjectID}, []string{"i2"}},
			{"admin", InboundFilter{ProjectID: DefaultProjectID, IncludeUnmatched: true}, []string{"i3", "i2", "i1"}},
			{"admin unmatched", InboundFilter{ProjectID: DefaultProjectID, IncludeUnmatched: true, Matched: &no}, []string{"i3", "i1"}},
			{"admin matched", InboundFilter{ProjectID: DefaultProjectID, IncludeUnmatched: true, Matched: &yes}, []string{"i2"}},
			{"kind", InboundFilter{ProjectID: DefaultProjectID, IncludeUnmatched: true, Kind: "delayed"}, []string{"i3"}},
			{"other project", InboundFilter{ProjectID: other.ID}, nil},
			{"other project admin", InboundFilter{ProjectID: other.ID, IncludeUnmatched: true}, []string{"i3", "i1"}},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				if diff := cmp.Diff(tc.want, listInboundIDs(t, s, tc.f)); diff != "" {
					t.Errorf("ids (-want +got):\n%s", diff)
				}
			})
		}
		list, _, err := s.ListInbound(ctx, InboundFilter{ProjectID: DefaultProjectID})
		if err != nil || len(list) != 1 {
			t.Fatalf("list: %v %v", list, err)
		}
		want := Inbound{ID: "i2", ProjectID: DefaultProjectID, Mailbox: "bounces", MailboxMessageID: "2",
			ReceivedAt: clk.Now().Add(-time.Second), Kind: "bounce", Matched: true, Authenticated: true, MessageID: "m1",
			Recipient: "a@example.org", Summary: json.RawMessage(`{"kind":"bounce"}`), RawSize: 100}
		if diff := cmp.Diff(want, list[0]); diff != "" {
			t.Errorf("row (-want +got):\n%s", diff)
		}
		all, _, err := s.ListInbound(ctx, InboundFilter{ProjectID: DefaultProjectID, IncludeUnmatched: true})
		if err != nil || len(all) != 3 || all[2].ID != "i1" || all[2].Authenticated {
			t.Errorf("unmatched row i1 listed as %+v, %v; want not authenticated", all, err)
		}
		if _, _, err := s.ListInbound(ctx, InboundFilter{Page: Page{Cursor: "bad!"}}); !errors.Is(err, ErrBadCursor) {
			t.Errorf("bad cursor: %v", err)
		}
	})
}

// listInboundIDs pages through f one row at a time.
func listInboundIDs(t *testing.T, s *Store, f InboundFilter) []string {
	t.Helper()
	var ids []string
	f.Limit = 1
	for range 10 {
		list, next, err := s.ListInbound(context.Background(), f)
		if err != nil {
			t.Fatalf("list: %v", err)
		}
		for _, in := range list {
			ids = append(ids, in.ID)
		}
		if next == "" {
			return ids
		}
		f.Cursor = next
	}
	t.Fatal("too many pages")
	return nil
}

func TestLoadInboundTarget(t *testing.T) {
	engines(t, func(t *testing.T, s *Store, clk *clock) {
		ctx := context.Background()
		sentMessages(t, s, clk, []string{"m1"}, "a@example.org", "b@example.org")
		got, err := s.LoadInboundTarget(ctx, "m1")
		if err != nil {
			t.Fatalf("load: %v", err)
		}
		want := InboundTarget{ID: "m1", ProjectID: DefaultProjectID, FromDomain: "shop.example",
			Recipients: []DeliveryRecipient{{0, "a@example.org", KindTo, StatusSent}, {1, "b@example.org", KindTo, StatusSent}}}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("target (-want +got):\n%s", diff)
		}
		if _, err := s.LoadInboundTarget(ctx, "nope"); !errors.Is(err, ErrNotFound) {
			t.Errorf("missing message: %v, want ErrNotFound", err)
		}
	})
}

// A record no VERP token authenticated may append its event and nothing
// else: given a state change it is refused whole, the inbound row
// included, so a caller's mistake cannot suppress anyone.
func TestRecordInboundUnauthenticatedChangesNothing(t *testing.T) {
	engines(t, func(t *testing.T, s *Store, clk *clock) {
		ctx := context.Background()
		sentMessages(t, s, clk, []string{"m1"}, "a@example.org", "b@example.org")
		rec := bounceRecord("uid-1", "m1", 1, "b@example.org", true)
		rec.Authenticated = false
		if _, err := s.RecordInbound(ctx, rec); !errors.Is(err, ErrUnauthenticatedEffect) {
			t.Fatalf("unauthenticated hard bounce: err %v, want ErrUnauthenticatedEffect", err)
		}
		if _, err := s.GetSuppression(ctx, DefaultProjectID, "b@example.org"); !errors.Is(err, ErrNotFound) {
			t.Errorf("suppression after a refused record: err %v, want ErrNotFound", err)
		}
		if all, _, err := s.ListInbound(ctx, InboundFilter{ProjectID: DefaultProjectID, IncludeUnmatched: true}); err != nil || len(all) != 0 {
			t.Errorf("inbound rows after a refused record: %d (%v), want none", len(all), err)
		}

		// The event alone is recorded, marked, and changes no status.
		ef := rec.Effects[0]
		rec.Effects = []InboundEffect{{Position: ef.Position, Email: ef.Email, Event: ef.Event, EventData: ef.EventData}}
		got, err := s.RecordInbound(ctx, rec)
		if err != nil {
			t.Fatalf("event only: %v", err)
		}
		if diff := cmp.Diff(InboundResult{Effects: []EffectResult{{Applied: true}}}, got); diff != "" {
			t.Errorf("event only (-want +got):\n%s", diff)
		}
		m, err := s.GetMessage(ctx, DefaultProjectID, "m1")
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{StatusSent, StatusSent}, recipientStatuses(m)); diff != "" {
			t.Errorf("statuses (-want +got):\n%s", diff)
		}
		if _, err := s.GetSuppression(ctx, DefaultProjectID, "b@example.org"); !errors.Is(err, ErrNotFound) {
			t.Errorf("suppression after the event: err %v, want ErrNotFound", err)
		}
	})
}
