package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// seedMessages creates n messages one second apart; every third is tagged
// "promo", every fifth is addressed to vip@example.org, and the 10 newest
// share one created_at to exercise the id tie-break.
func seedMessages(t *testing.T, s *Store, t0 time.Time, n int) {
	t.Helper()
	var msgs []NewMessage
	for i := range n {
		created := t0.Add(time.Duration(min(i, n-10)) * time.Second)
		to := fmt.Sprintf("user%d@example.org", i)
		if i%5 == 0 {
			to = "VIP@example.org"
		}
		m := newMsg(fmt.Sprintf("m%03d", i), created, to)
		if i%3 == 0 {
			m.Tags = []string{"promo", "order"}
		}
		msgs = append(msgs, m)
	}
	if _, err := s.CreateMessages(context.Background(), msgs, nil); err != nil {
		t.Fatalf("seed: %v", err)
	}
}

// pageAll follows cursors until the end and returns every id in order.
func pageAll(t *testing.T, s *Store, f MessageFilter) []string {
	t.Helper()
	var ids []string
	for pages := 0; ; pages++ {
		if pages > 50 {
			t.Fatal("pagination does not end")
		}
		msgs, next, err := s.ListMessages(context.Background(), DefaultProjectID, f)
		if err != nil {
			t.Fatalf("list: %v", err)
		}
		if len(msgs) > pageLimit(f.Page) {
			t.Fatalf("page of %d, limit %d", len(msgs), pageLimit(f.Page))
		}
		for _, m := range msgs {
			if len(m.Recipients) == 0 {
				t.Fatalf("message %s listed without recipients", m.ID)
			}
			ids = append(ids, m.ID)
		}
		if next == "" {
			return ids
		}
		f.Cursor = next
	}
}

// wantIDs lists m%03d ids from hi down to lo that keep passes.
func wantIDs(hi, lo int, keep func(i int) bool) []string {
	var out []string
	for i := hi; i >= lo; i-- {
		if keep(i) {
			out = append(out, fmt.Sprintf("m%03d", i))
		}
	}
	return out
}

func TestListMessages(t *testing.T) {
	engines(t, func(t *testing.T, s *Store, clk *clock) {
		t0 := clk.Now()
		seedMessages(t, s, t0, 120)
		all := func(int) bool { return true }
		since, until := t0.Add(20*time.Second), t0.Add(30*time.Second)
		tests := []struct {
			name string
			f    MessageFilter
			want []string
		}{
			{"all pages of 50", MessageFilter{}, wantIDs(119, 0, all)},
			{"pages of 7", MessageFilter{Page: Page{Limit: 7}}, wantIDs(119, 0, all)},
			{"tag", MessageFilter{Tag: "promo"}, wantIDs(119, 0, func(i int) bool { return i%3 == 0 })},
			{"recipient any case", MessageFilter{Recipient: "vip@EXAMPLE.org", Page: Page{Limit: 4}},
				wantIDs(119, 0, func(i int) bool { return i%5 == 0 })},
			{"since inclusive until exclusive", MessageFilter{Since: &since, Until: &until},
				wantIDs(29, 20, all)},
			{"status", MessageFilter{Status: StatusQueued, Tag: "promo", Recipient: "vip@example.org"},
				wantIDs(119, 0, func(i int) bool { return i%15 == 0 })},
			{"no match", MessageFilter{Status: StatusSent}, nil},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if diff := cmp.Diff(tt.want, pageAll(t, s, tt.f)); diff != "" {
					t.Errorf("ids (-want +got):\n%s", diff)
				}
			})
		}
		t.Run("first page size", func(t *testing.T) {
			msgs, next, err := s.ListMessages(context.Background(), DefaultProjectID, MessageFilter{})
			if err != nil || len(msgs) != DefaultPageLimit || next == "" {
				t.Errorf("first page = %d messages, next %q, %v", len(msgs), next, err)
			}
		})
		t.Run("bad cursor", func(t *testing.T) {
			for _, c := range []string{"!!!", "bm90IGpzb24"} {
				_, _, err := s.ListMessages(context.Background(), DefaultProjectID, MessageFilter{Page: Page{Cursor: c}})
				if !errors.Is(err, ErrBadCursor) {
					t.Errorf("cursor %q: %v, want ErrBadCursor", c, err)
				}
			}
		})
	})
}

func TestListEvents(t *testing.T) {
	engines(t, func(t *testing.T, s *Store, clk *clock) {
		ctx := context.Background()
		t0 := clk.Now()
		seedMessages(t, s, t0, 30)
		if _, err := s.CancelMessage(ctx, DefaultProjectID, "m005"); err != nil {
			t.Fatalf("cancel: %v", err)
		}
		var types []string
		var seqs []int64
		f := EventFilter{Page: Page{Limit: 7}}
		lastID := int64(1 << 62)
		for {
			evs, next, err := s.ListEvents(ctx, DefaultProjectID, f)
			if err != nil {
				t.Fatalf("list events: %v", err)
			}
			for _, ev := range evs {
				if ev.ID >= lastID {
					t.Fatalf("event ids not strictly descending: %d after %d", ev.ID, lastID)
				}
				lastID = ev.ID
				types = append(types, ev.Type)
			}
			if next == "" {
				break
			}
			f.Cursor = next
		}
		if len(types) != 31 || types[0] != EventCancelled {
			t.Errorf("feed has %d events, newest %q; want 31, newest cancelled", len(types), types[0])
		}
		evs, _, err := s.ListEvents(ctx, DefaultProjectID, EventFilter{MessageID: "m005"})
		if err != nil {
			t.Fatalf("by message: %v", err)
		}
		for _, ev := range evs {
			seqs = append(seqs, ev.Sequence)
		}
		if diff := cmp.Diff([]int64{2, 1}, seqs); diff != "" {
			t.Errorf("sequences of m005 newest first (-want +got):\n%s", diff)
		}
		filters := []struct {
			name string
			f    EventFilter
			want int
		}{
			{"type", EventFilter{Type: EventCancelled}, 1},
			{"recipient", EventFilter{Recipient: "vip@example.ORG"}, 7},
			{"since", EventFilter{Since: ptr(t0.Add(20 * time.Second)), Type: EventQueued}, 10},
			{"until", EventFilter{Until: ptr(t0.Add(2 * time.Second))}, 3},
		}
		for _, tt := range filters {
			evs, _, err := s.ListEvents(ctx, DefaultProjectID, tt.f)
			if err != nil || len(evs) != tt.want {
				t.Errorf("%s filter: %d events, %v; want %d", tt.name, len(evs), err, tt.want)
			}
		}
	})
}

func ptr[T any](v T) *T { return &v }

// TestListMessagesRecipient pages the recipient filter for an address on
// more recipient rows than fewRecipientsBound (SQLite walks the list) and
// on fewer (SQLite reads the address's rows first), each including a
// message that carries the address twice (to and cc): the same pages, in
// the same order, on both engines.
func TestListMessagesRecipient(t *testing.T) {
	engines(t, func(t *testing.T, s *Store, clk *clock) {
		ctx := context.Background()
		t0 := clk.Now()
		n := fewRecipientsBound + 100
		many := func(i int) bool { return i%20 != 0 }
		few := func(i int) bool { return i%100 == 7 }
		var msgs []NewMessage
		for i := range n {
			created := t0.Add(time.Duration(min(i, n-10)) * time.Second)
			var to []string
			if many(i) {
				to = append(to, "many@example.org")
			}
			if few(i) {
				to = append(to, "Few@example.org")
			}
			m := newMsg(fmt.Sprintf("m%04d", i), created, append(to, fmt.Sprintf("user%d@example.org", i))...)
			if i == 507 || i == n-3 {
				m.Recipients = append(m.Recipients,
					NewRecipient{Email: "few@example.org", Kind: KindCc, Status: StatusQueued},
					NewRecipient{Email: "many@example.org", Kind: KindCc, Status: StatusQueued})
			}
			msgs = append(msgs, m)
		}
		if _, err := s.CreateMessages(ctx, msgs, nil); err != nil {
			t.Fatalf("seed: %v", err)
		}
		ids := func(keep func(int) bool) []string {
			var out []string
			for i := n - 1; i >= 0; i-- {
				if keep(i) {
					out = append(out, fmt.Sprintf("m%04d", i))
				}
			}
			return out
		}
		for _, tt := range []struct {
			email string
			few   bool
			want  []string
		}{
			{"MANY@example.org", false, ids(func(i int) bool { return many(i) || i == 507 || i == n-3 })},
			{"few@EXAMPLE.org", true, ids(func(i int) bool { return few(i) || i == 507 || i == n-3 })},
		} {
			t.Run(tt.email, func(t *testing.T) {
				if s.Dialect() == DialectSQLite {
					if got, err := s.fewRecipientRows(ctx, strings.ToLower(tt.email)); err != nil || got != tt.few {
						t.Fatalf("fewRecipientRows = %v, %v; want %v", got, err, tt.few)
					}
				}
				for _, limit := range []int{0, 30, 7} {
					if limit == 7 && !tt.few {
						continue
					}
					got := pageAll(t, s, MessageFilter{Recipient: tt.email, Page: Page{Limit: limit}})
					if diff := cmp.Diff(tt.want, got); diff != "" {
						t.Errorf("pages of %d (-want +got):\n%s", limit, diff)
					}
				}
				since, until := t0.Add(500*time.Second), t0.Add(900*time.Second)
				got := pageAll(t, s, MessageFilter{Recipient: tt.email, Status: StatusQueued, Since: &since,
					Until: &until, Page: Page{Limit: 9}})
				want := ids(func(i int) bool { return i >= 500 && i < 900 && slices.Contains(tt.want, fmt.Sprintf("m%04d", i)) })
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("with status and time range (-want +got):\n%s", diff)
				}
			})
		}
	})
}
