package store

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestOverview: the totals per sender domain and the series of each
// window, from the rolled-up counts, with the window's first bucket in and
// the one before out; the domain filter; the queue's depth and oldest
// message (scheduled ones apart); another project's mail never counted.
func TestOverview(t *testing.T) {
	engines(t, func(t *testing.T, s *Store, clk *clock) {
		ctx := context.Background()
		t0 := clk.Now() // 09:00:00
		now := t0.Add(30*time.Minute + 15*time.Second)
		other, err := s.CreateProject(ctx, "other")
		if err != nil {
			t.Fatal(err)
		}
		sendAt := now.Add(time.Hour)
		sched := newMsg("sched", t0.Add(-2*time.Hour), "s@example.org")
		sched.Recipients[0].Status, sched.SendAt = StatusScheduled, &sendAt
		theirs := newMsg("theirs", t0, "x@example.org")
		theirs.ProjectID = other.ID
		create(t, s,
			newMsg("first", t0.Add(-29*time.Minute), "a@example.org"),              // 08:31:00, the hour's first bucket
			newMsg("before", t0.Add(-29*time.Minute-time.Second), "b@example.org"), // 08:30:59, out of the hour
			newMsg("last", t0.Add(30*time.Minute), "c@example.org"),                // 09:30:00, the last bucket
			fromDomain(newMsg("news", t0, "d@example.org"), "news.example"),        // 09:00:00
			sched, theirs)
		if _, err := s.db.Exec(`UPDATE messages SET status = 'deferred' WHERE id = 'before'`); err != nil {
			t.Fatal(err)
		}
		if _, err := s.RollUpEvents(ctx, now.Add(time.Minute), 100); err != nil { // past the lag
			t.Fatal(err)
		}

		type summary struct {
			From, To  time.Time
			Points    int
			Domains   []DomainCounts
			Total     Counts
			Nonzero   map[int]int64 // series index → accepted
			Queue     QueueState
			AsOfIsSet bool
		}
		summarize := func(o Overview) summary {
			sum := summary{From: o.From, To: o.To, Points: len(o.Series), Domains: o.Domains, Total: o.Total,
				Nonzero: map[int]int64{}, Queue: o.Queue, AsOfIsSet: !o.AsOf.IsZero()}
			for i, p := range o.Series {
				if !p.Start.Equal(o.From.Add(time.Duration(i) * o.Bucket)) {
					t.Errorf("point %d starts at %v", i, p.Start)
				}
				if p.Accepted != 0 {
					sum.Nonzero[i] = p.Accepted
				}
			}
			return sum
		}
		at := func(d time.Duration) *time.Time { v := t0.Add(d); return &v }
		queue := QueueState{Queued: 3, Deferred: 1, Scheduled: 1, Oldest: at(-29*time.Minute - time.Second)}
		day := t0.Add(time.Hour - 24*time.Hour)
		for _, tc := range []struct {
			window Window
			domain string
			want   summary
		}{
			{WindowHour, "", summary{From: t0.Add(-29 * time.Minute), To: t0.Add(31 * time.Minute), Points: 60,
				Domains: []DomainCounts{{"news.example", Counts{Accepted: 1}}, {"shop.example", Counts{Accepted: 2}}},
				Total:   Counts{Accepted: 3}, Nonzero: map[int]int64{0: 1, 29: 1, 59: 1}, Queue: queue, AsOfIsSet: true}},
			{WindowDay, "", summary{From: day, To: t0.Add(time.Hour), Points: 24,
				Domains: []DomainCounts{{"news.example", Counts{Accepted: 1}}, {"shop.example", Counts{Accepted: 4}}},
				Total:   Counts{Accepted: 5}, Nonzero: map[int]int64{21: 1, 22: 2, 23: 2}, Queue: queue, AsOfIsSet: true}},
			{WindowWeek, "", summary{From: t0.Add(time.Hour - 7*24*time.Hour), To: t0.Add(time.Hour), Points: 168,
				Domains: []DomainCounts{{"news.example", Counts{Accepted: 1}}, {"shop.example", Counts{Accepted: 4}}},
				Total:   Counts{Accepted: 5}, Nonzero: map[int]int64{165: 1, 166: 2, 167: 2}, Queue: queue, AsOfIsSet: true}},
			{WindowHour, "news.example", summary{From: t0.Add(-29 * time.Minute), To: t0.Add(31 * time.Minute), Points: 60,
				Domains: []DomainCounts{{"news.example", Counts{Accepted: 1}}}, Total: Counts{Accepted: 1},
				Nonzero: map[int]int64{29: 1}, Queue: QueueState{Queued: 1, Oldest: at(0)}, AsOfIsSet: true}},
		} {
			t.Run(string(tc.window)+"/"+tc.domain, func(t *testing.T) {
				o, err := s.Overview(ctx, DefaultProjectID, tc.window, tc.domain, now)
				if err != nil {
					t.Fatal(err)
				}
				if d := cmp.Diff(tc.want, summarize(o)); d != "" {
					t.Errorf("overview (-want +got):\n%s", d)
				}
			})
		}
		theirsView, err := s.Overview(ctx, other.ID, WindowHour, "", now)
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff([]DomainCounts{{"shop.example", Counts{Accepted: 1}}}, theirsView.Domains); d != "" {
			t.Errorf("the other project's overview (-want +got):\n%s", d)
		}
		if _, err := s.Overview(ctx, DefaultProjectID, "month", "", now); err == nil {
			t.Error("an unknown window was accepted")
		}
	})
}

// TestOverviewBeforeRollup: before the first pass the overview is empty,
// with no as-of time, and the queue is read all the same.
func TestOverviewBeforeRollup(t *testing.T) {
	engines(t, func(t *testing.T, s *Store, clk *clock) {
		create(t, s, newMsg("a", clk.Now(), "a@example.org"))
		o, err := s.Overview(context.Background(), DefaultProjectID, WindowDay, "", clk.Now())
		if err != nil {
			t.Fatal(err)
		}
		if len(o.Domains) != 0 || !o.AsOf.IsZero() || o.Queue.Depth() != 1 {
			t.Errorf("before the rollup: domains %v, as of %v, queue %+v", o.Domains, o.AsOf, o.Queue)
		}
	})
}
