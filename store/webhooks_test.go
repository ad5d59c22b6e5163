package store

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func newEndpoint(t *testing.T, s *Store, url string, events, tags []string, enabled bool) WebhookEndpoint {
	t.Helper()
	ep, err := s.CreateWebhookEndpoint(context.Background(), WebhookEndpoint{ProjectID: DefaultProjectID, URL: url,
		Events: events, Tags: tags, Enabled: enabled, SecretSealed: []byte("sealed")})
	if err != nil {
		t.Fatal(err)
	}
	return ep
}

// claimAll claims every due delivery of ep (at most 100) at the store's
// clock, with a one-minute lease.
func claimAll(t *testing.T, s *Store, ep WebhookEndpoint) []ClaimedDelivery {
	t.Helper()
	now := s.now()
	c, err := s.ClaimWebhookDeliveries(context.Background(), ep.ID, 100, now, now.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Deliveries) > 0 && c.Endpoint.ID != ep.ID {
		t.Fatalf("claim of %s carries endpoint %q", ep.ID, c.Endpoint.ID)
	}
	return c.Deliveries
}

func claimedTypes(c []ClaimedDelivery) []string {
	var out []string
	for _, d := range c {
		out = append(out, d.Event.Type+" "+d.Event.Recipient)
	}
	slices.Sort(out)
	return out
}

// TestWebhookFanout: every event committed, by whichever writer, gets a
// delivery for each enabled endpoint whose type and tag filters it
// matches; claiming leases them, and a lease that lapses makes them due
// again with the same webhook-id.
func TestWebhookFanout(t *testing.T) {
	engines(t, func(t *testing.T, s *Store, clk *clock) {
		ctx := context.Background()
		all := newEndpoint(t, s, "https://all.example/", nil, nil, true)
		sent := newEndpoint(t, s, "https://sent.example/", []string{EventSent}, nil, true)
		vip := newEndpoint(t, s, "https://vip.example/", nil, []string{"vip"}, true)
		off := newEndpoint(t, s, "https://off.example/", nil, nil, false)

		plain := newMsg("m1", clk.Now(), "ann@example.org", "bob@example.org")
		special := newMsg("m2", clk.Now(), "cat@example.org")
		special.Tags = []string{"vip", "order"}
		if _, err := s.CreateMessages(ctx, []NewMessage{plain, special}, nil); err != nil {
			t.Fatal(err)
		}
		startedAlone(t, s, "m1")
		record(t, s, "m1", Outcome{Position: 0, Email: "ann@example.org", Status: StatusSent, SMTPCode: 250,
			Event: EventSent, EventData: json.RawMessage(`{"smtp_code":250}`)})

		got := claimAll(t, s, all)
		want := []string{"message.queued ann@example.org", "message.queued bob@example.org",
			"message.queued cat@example.org", "message.sent ann@example.org"}
		if diff := cmp.Diff(want, claimedTypes(got)); diff != "" {
			t.Errorf("all-events endpoint (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]string{"message.sent ann@example.org"}, claimedTypes(claimAll(t, s, sent))); diff != "" {
			t.Errorf("sent-only endpoint (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]string{"message.queued cat@example.org"}, claimedTypes(claimAll(t, s, vip))); diff != "" {
			t.Errorf("vip endpoint (-want +got):\n%s", diff)
		}
		if c := claimAll(t, s, off); len(c) != 0 {
			t.Errorf("disabled endpoint got %d deliveries", len(c))
		}
		// Replay catches a disabled endpoint up; the filters apply.
		for _, tt := range []struct {
			ep   WebhookEndpoint
			want int
		}{{off, 4}, {sent, 1}, {vip, 1}} {
			n, err := s.ReplayWebhookEvents(ctx, DefaultProjectID, tt.ep.ID, clk.Now(), clk.Now().Add(time.Second))
			if err != nil || n != tt.want {
				t.Errorf("replay to %s: %d, %v; want %d", tt.ep.URL, n, err, tt.want)
			}
		}
		if diff := cmp.Diff([]string{"message.sent ann@example.org"}, claimedTypes(claimAll(t, s, sent))); diff != "" {
			t.Errorf("sent-only endpoint after replay (-want +got):\n%s", diff)
		}

		for _, d := range got {
			if d.Event.Type != EventSent {
				continue
			}
			data, err := d.Event.WebhookData()
			if err != nil {
				t.Fatal(err)
			}
			var fields map[string]any
			_ = json.Unmarshal(data, &fields)
			wantFields := map[string]any{"message_id": "m1", "recipient": "ann@example.org", "sequence": float64(3),
				"tags": []any{"order"}, "metadata": map[string]any{"order_id": "m1"}, "smtp_code": float64(250)}
			if diff := cmp.Diff(wantFields, fields); diff != "" {
				t.Errorf("data of the sent event (-want +got):\n%s", diff)
			}
		}

		if c := claimAll(t, s, all); len(c) != 0 {
			t.Fatalf("leased deliveries claimed again: %d", len(c))
		}
		clk.Advance(time.Minute)
		again := claimAll(t, s, all)
		ids := func(c []ClaimedDelivery) []string {
			var out []string
			for _, d := range c {
				out = append(out, d.ID)
			}
			slices.Sort(out)
			return out
		}
		if diff := cmp.Diff(ids(got), ids(again)); diff != "" {
			t.Errorf("a lapsed lease changes the deliveries (-first +again):\n%s", diff)
		}
	})
}

// TestWebhookAttempts: outcomes land on the delivery and the endpoint; a
// disabling writes the event log; retry and replay queue deliveries again.
func TestWebhookAttempts(t *testing.T) {
	engines(t, func(t *testing.T, s *Store, clk *clock) {
		ctx := context.Background()
		ep := newEndpoint(t, s, "https://hooks.example/", nil, nil, true)
		other := newEndpoint(t, s, "https://other.example/", nil, nil, true)
		if _, err := s.CreateMessages(ctx, []NewMessage{newMsg("m1", clk.Now(), "ann@example.org", "bob@example.org")}, nil); err != nil {
			t.Fatal(err)
		}
		c := claimAll(t, s, ep)
		if len(c) != 2 {
			t.Fatalf("claimed %d", len(c))
		}
		next := clk.Now().Add(5 * time.Second)
		attempts := []WebhookAttempt{
			{DeliveryID: c[0].ID, EndpointID: ep.ID, Lease: c[0].Lease, Status: DeliveryDelivered, Counted: true, ResponseCode: 204,
				Latency: 12 * time.Millisecond, At: clk.Now()},
			{DeliveryID: c[1].ID, EndpointID: ep.ID, Lease: c[1].Lease, Status: DeliveryFailed, Counted: true, ResponseCode: 500,
				ResponseBody: "oops", Error: "webhook endpoint answered 500", NextAttemptAt: &next, At: clk.Now()},
		}
		for _, a := range attempts {
			if ok, err := s.RecordWebhookAttempt(ctx, a); err != nil || !ok {
				t.Fatal(ok, err)
			}
		}
		got, err := s.WebhookEndpoint(ctx, DefaultProjectID, ep.ID)
		if err != nil || got.FailingSince == nil || !got.FailingSince.Equal(clk.Now()) {
			t.Fatalf("failing since %v, %v", got.FailingSince, err)
		}
		failed, _, err := s.ListWebhookDeliveries(ctx, DefaultProjectID, ep.ID, WebhookDeliveryFilter{Status: DeliveryFailed})
		if err != nil || len(failed) != 1 || failed[0].ID != c[1].ID || failed[0].Attempts != 1 ||
			*failed[0].ResponseCode != 500 || failed[0].ResponseBody != "oops" || !failed[0].NextAttemptAt.Equal(next) {
			t.Fatalf("failed deliveries %+v, %v", failed, err)
		}

		if _, err := s.RetryWebhookDelivery(ctx, DefaultProjectID, ep.ID, c[0].ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.RetryWebhookDelivery(ctx, DefaultProjectID, other.ID, c[0].ID); err == nil {
			t.Error("a delivery retried through another endpoint")
		}
		again := claimAll(t, s, ep)
		if len(again) != 1 || again[0].ID != c[0].ID {
			t.Fatalf("after retry, claimed %+v", again)
		}

		// A disabling: endpoint off with its reason, event log says so,
		// and the project's other endpoint hears of it.
		ok, err := s.RecordWebhookAttempt(ctx, WebhookAttempt{DeliveryID: again[0].ID, EndpointID: ep.ID, Lease: again[0].Lease,
			Status: DeliveryFailed, Counted: true, ResponseCode: 410, NextAttemptAt: &next,
			DisableReason: "the endpoint answered 410 Gone", At: clk.Now()})
		if err != nil || !ok {
			t.Fatal(ok, err)
		}
		got, _ = s.WebhookEndpoint(ctx, DefaultProjectID, ep.ID)
		if got.Enabled || got.DisabledReason != "the endpoint answered 410 Gone" {
			t.Fatalf("endpoint %+v", got)
		}
		evs, _, err := s.ListEvents(ctx, DefaultProjectID, EventFilter{Type: EventWebhookDisabled})
		if err != nil || len(evs) != 1 {
			t.Fatalf("disabled events %+v, %v", evs, err)
		}
		data, _ := evs[0].WebhookData()
		if want := `{"reason":"the endpoint answered 410 Gone","url":"https://hooks.example/","webhook_id":"` + ep.ID + `"}`; string(data) != want {
			t.Errorf("event data %s, want %s", data, want)
		}
		if n := claimedTypes(claimAll(t, s, other)); !slices.Contains(n, EventWebhookDisabled+" ") {
			t.Errorf("the other endpoint got %v", n)
		}
		g, err := s.WebhookGauges(ctx)
		if err != nil || g.DisabledEndpoints != 1 {
			t.Errorf("gauges %+v, %v", g, err)
		}

		on := true
		if got, err = s.UpdateWebhookEndpoint(ctx, DefaultProjectID, ep.ID, WebhookEndpointPatch{Enabled: &on}); err != nil ||
			!got.Enabled || got.DisabledReason != "" || got.FailingSince != nil {
			t.Fatalf("enabled again: %+v, %v", got, err)
		}

		n, err := s.ReplayWebhookEvents(ctx, DefaultProjectID, ep.ID, clk.Now().Add(-time.Hour), clk.Now().Add(time.Hour))
		if err != nil || n != 3 { // two queued events and the disabling
			t.Fatalf("replayed %d, %v", n, err)
		}
		clk.Advance(time.Hour)
		if r := claimAll(t, s, ep); len(r) != 5 { // three replays, the failed one and the lapsed lease
			t.Fatalf("claimed after replay %d", len(r))
		}
	})
}

// TestWebhookAttemptLease: an attempt's outcome is written only under its
// lease: once a retry has made the delivery due again and another claim
// holds it, the first attempt's outcome is dropped (recorded false, no
// error) and the endpoint untouched; the second attempt's is written.
func TestWebhookAttemptLease(t *testing.T) {
	engines(t, func(t *testing.T, s *Store, clk *clock) {
		ctx := context.Background()
		ep := newEndpoint(t, s, "https://hooks.example/", nil, nil, true)
		if _, err := s.CreateMessages(ctx, []NewMessage{newMsg("m1", clk.Now(), "ann@example.org")}, nil); err != nil {
			t.Fatal(err)
		}
		first := claimAll(t, s, ep)
		if len(first) != 1 {
			t.Fatalf("claimed %d", len(first))
		}
		clk.Advance(time.Second)
		if _, err := s.RetryWebhookDelivery(ctx, DefaultProjectID, ep.ID, first[0].ID); err != nil {
			t.Fatal(err)
		}
		second := claimAll(t, s, ep)
		if len(second) != 1 || second[0].ID != first[0].ID || second[0].Lease.Equal(first[0].Lease) {
			t.Fatalf("after retry, claimed %+v (first lease %v)", second, first[0].Lease)
		}
		ok, err := s.RecordWebhookAttempt(ctx, WebhookAttempt{DeliveryID: second[0].ID, EndpointID: ep.ID,
			Lease: second[0].Lease, Status: DeliveryDelivered, Counted: true, ResponseCode: 200, At: clk.Now()})
		if err != nil || !ok {
			t.Fatalf("second attempt recorded %v, %v", ok, err)
		}
		next := clk.Now().Add(time.Minute)
		ok, err = s.RecordWebhookAttempt(ctx, WebhookAttempt{DeliveryID: first[0].ID, EndpointID: ep.ID,
			Lease: first[0].Lease, Status: DeliveryFailed, Counted: true, ResponseCode: 500, NextAttemptAt: &next,
			At: clk.Now()})
		if err != nil || ok {
			t.Fatalf("stale attempt recorded %v, %v; want dropped", ok, err)
		}
		d, err := s.WebhookDelivery(ctx, DefaultProjectID, ep.ID, first[0].ID)
		if err != nil || d.Status != DeliveryDelivered || d.Attempts != 1 || d.NextAttemptAt != nil {
			t.Fatalf("delivery %+v, %v; want delivered once", d, err)
		}
		if got, _ := s.WebhookEndpoint(ctx, DefaultProjectID, ep.ID); got.FailingSince != nil {
			t.Fatalf("a dropped outcome marked the endpoint failing since %v", got.FailingSince)
		}
	})
}

// TestWebhookDisableAfter: a failed attempt disables its endpoint when the
// endpoint's failing_since, as stored when the attempt is written, is
// DisableAfter old; an exhausted outcome is then kept failed, due again.
// A younger failing_since leaves the endpoint enabled.
func TestWebhookDisableAfter(t *testing.T) {
	engines(t, func(t *testing.T, s *Store, clk *clock) {
		ctx := context.Background()
		ep := newEndpoint(t, s, "https://hooks.example/", nil, nil, true)
		if _, err := s.CreateMessages(ctx, []NewMessage{newMsg("m1", clk.Now(), "ann@example.org", "bob@example.org")}, nil); err != nil {
			t.Fatal(err)
		}
		c := claimAll(t, s, ep)
		if len(c) != 2 {
			t.Fatalf("claimed %d", len(c))
		}
		const after = 5 * 24 * time.Hour
		setSince := func(d time.Duration) {
			t.Helper()
			if _, err := s.db.ExecContext(ctx, `UPDATE webhook_endpoints SET failing_since = $1 WHERE id = $2`,
				micros(clk.Now().Add(-d)), ep.ID); err != nil {
				t.Fatal(err)
			}
		}
		setSince(after - time.Second)
		next := clk.Now().Add(time.Hour)
		if ok, err := s.RecordWebhookAttempt(ctx, WebhookAttempt{DeliveryID: c[0].ID, EndpointID: ep.ID, Lease: c[0].Lease,
			Status: DeliveryFailed, Counted: true, ResponseCode: 500, NextAttemptAt: &next, DisableAfter: after,
			At: clk.Now()}); err != nil || !ok {
			t.Fatal(ok, err)
		}
		if got, _ := s.WebhookEndpoint(ctx, DefaultProjectID, ep.ID); !got.Enabled {
			t.Fatalf("disabled before DisableAfter: %+v", got)
		}
		setSince(after)
		if ok, err := s.RecordWebhookAttempt(ctx, WebhookAttempt{DeliveryID: c[1].ID, EndpointID: ep.ID, Lease: c[1].Lease,
			Status: DeliveryExhausted, Counted: true, ResponseCode: 500, DisableAfter: after, At: clk.Now()}); err != nil || !ok {
			t.Fatal(ok, err)
		}
		got, _ := s.WebhookEndpoint(ctx, DefaultProjectID, ep.ID)
		if want := "every attempt failed since " + clk.Now().Add(-after).UTC().Format(time.RFC3339); got.Enabled || got.DisabledReason != want {
			t.Fatalf("endpoint %+v, want disabled with %q", got, want)
		}
		d, err := s.WebhookDelivery(ctx, DefaultProjectID, ep.ID, c[1].ID)
		if err != nil || d.Status != DeliveryFailed || d.NextAttemptAt == nil {
			t.Fatalf("delivery %+v, %v; want failed and due", d, err)
		}
		// Due, but its endpoint is disabled: not claimed until enabled.
		if got := claimAll(t, s, ep); len(got) != 0 {
			t.Fatalf("claimed %d deliveries of a disabled endpoint", len(got))
		}
		enabled := true
		if _, err := s.UpdateWebhookEndpoint(ctx, DefaultProjectID, ep.ID, WebhookEndpointPatch{Enabled: &enabled}); err != nil {
			t.Fatal(err)
		}
		if got := claimAll(t, s, ep); len(got) != 1 || got[0].ID != c[1].ID {
			t.Fatalf("after enabling, claimed %+v", got)
		}
	})
}

// TestWebhookDeliveryAttemptLog: a delivery's log keeps every attempt's
// answer, oldest first: the failures and deferrals, then the 2xx; a
// delivery answered at once has that answer alone; another project sees
// none of it; deleting the endpoint deletes the log.
func TestWebhookDeliveryAttemptLog(t *testing.T) {
	engines(t, func(t *testing.T, s *Store, clk *clock) {
		ctx := context.Background()
		ep := newEndpoint(t, s, "https://hooks.example/", []string{EventQueued}, nil, true)
		if _, err := s.CreateMessages(ctx, []NewMessage{newMsg("m1", clk.Now(), "ann@example.org", "bob@example.org")}, nil); err != nil {
			t.Fatal(err)
		}
		c := claimAll(t, s, ep)
		if len(c) != 2 {
			t.Fatalf("claimed %d", len(c))
		}
		slow, quick := c[0], c[1]
		record := func(d ClaimedDelivery, a WebhookAttempt) {
			t.Helper()
			a.DeliveryID, a.EndpointID, a.Lease, a.At = d.ID, ep.ID, d.Lease, clk.Now()
			if ok, err := s.RecordWebhookAttempt(ctx, a); err != nil || !ok {
				t.Fatal(ok, err)
			}
		}
		code := func(n int) *int { return &n }
		ms := func(n int64) *int64 { return &n }
		t0 := clk.Now()
		record(quick, WebhookAttempt{Status: DeliveryDelivered, Counted: true, ResponseCode: 200, ResponseBody: "ok",
			Latency: 3 * time.Millisecond})
		next := t0.Add(5 * time.Second)
		record(slow, WebhookAttempt{Status: DeliveryFailed, Counted: true, ResponseCode: 500, ResponseBody: "boom",
			Latency: 7 * time.Millisecond, Error: "webhook endpoint answered 500", NextAttemptAt: &next})
		clk.Advance(5 * time.Second)
		d := claimAll(t, s, ep)
		if len(d) != 1 || d[0].ID != slow.ID {
			t.Fatalf("second claim %+v", d)
		}
		next = clk.Now().Add(time.Minute)
		record(d[0], WebhookAttempt{Status: DeliveryFailed, ResponseCode: 429, Latency: 2 * time.Millisecond,
			Error: "webhook endpoint answered 429", NextAttemptAt: &next})
		clk.Advance(time.Minute)
		d = claimAll(t, s, ep)
		record(d[0], WebhookAttempt{Status: DeliveryDelivered, Counted: true, ResponseCode: 204, Latency: 4 * time.Millisecond})

		got, err := s.WebhookDeliveryAttempts(ctx, DefaultProjectID, ep.ID, slow.ID)
		if err != nil {
			t.Fatal(err)
		}
		want := []DeliveryAttempt{
			{At: t0, Status: DeliveryFailed, ResponseCode: code(500), ResponseBody: "boom", LatencyMS: ms(7), Error: "webhook endpoint answered 500"},
			{At: t0.Add(5 * time.Second), Status: DeliveryFailed, ResponseCode: code(429), LatencyMS: ms(2), Error: "webhook endpoint answered 429"},
			{At: t0.Add(65 * time.Second), Status: DeliveryDelivered, ResponseCode: code(204), LatencyMS: ms(4)},
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("attempt log (-want +got):\n%s", diff)
		}
		got, err = s.WebhookDeliveryAttempts(ctx, DefaultProjectID, ep.ID, quick.ID)
		if want := []DeliveryAttempt{{At: t0, Status: DeliveryDelivered, ResponseCode: code(200), ResponseBody: "ok", LatencyMS: ms(3)}}; err != nil || !cmp.Equal(want, got) {
			t.Errorf("answered at once: %+v, %v", got, err)
		}
		// A retry of a delivered delivery keeps the first 2xx in the log.
		clk.Advance(time.Minute)
		if _, err := s.RetryWebhookDelivery(ctx, DefaultProjectID, ep.ID, quick.ID); err != nil {
			t.Fatal(err)
		}
		got, err = s.WebhookDeliveryAttempts(ctx, DefaultProjectID, ep.ID, quick.ID)
		if want := []DeliveryAttempt{{At: t0, Status: DeliveryDelivered, ResponseCode: code(200), ResponseBody: "ok", LatencyMS: ms(3)}}; err != nil || !cmp.Equal(want, got) {
			t.Errorf("retried, not yet attempted: %+v, %v", got, err)
		}
		d = claimAll(t, s, ep)
		if len(d) != 1 || d[0].ID != quick.ID {
			t.Fatalf("claim after retry %+v", d)
		}
		record(d[0], WebhookAttempt{Status: DeliveryDelivered, Counted: true, ResponseCode: 202, Latency: 5 * time.Millisecond})
		got, err = s.WebhookDeliveryAttempts(ctx, DefaultProjectID, ep.ID, quick.ID)
		if want := []DeliveryAttempt{{At: t0, Status: DeliveryDelivered, ResponseCode: code(200), ResponseBody: "ok", LatencyMS: ms(3)},
			{At: clk.Now(), Status: DeliveryDelivered, ResponseCode: code(202), LatencyMS: ms(5)}}; err != nil || !cmp.Equal(want, got) {
			t.Errorf("delivered twice: %+v, %v", got, err)
		}
		other, err := s.CreateProject(ctx, "other")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.WebhookDeliveryAttempts(ctx, other.ID, ep.ID, slow.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("another project: %v", err)
		}
		if err := s.DeleteWebhookEndpoint(ctx, DefaultProjectID, ep.ID); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := s.rdb.QueryRowContext(ctx, `SELECT count(*) FROM webhook_attempts`).Scan(&n); err != nil || n != 0 {
			t.Errorf("%d attempt rows after the endpoint's deletion, %v", n, err)
		}
	})
}
