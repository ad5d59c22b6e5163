package e2e

import (
	"context"
	"database/sql"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver

	"github.com/mailgate/mailgate/internal/smtptest"
	"github.com/mailgate/mailgate/internal/testsvc"
)

// slowAccept is a sink that takes 30 ms to accept each message (the
// sink's own pace, so that several transactions are in flight at once).
func slowAccept(string, string, []byte) smtptest.Action {
	t := time.NewTimer(30 * time.Millisecond)
	<-t.C
	return smtptest.Action{}
}

// TestWorkerKilledMidBatch: 300 messages, one api and one worker process
// (concurrency 4) on PostgreSQL; the worker is killed with SIGKILL once the
// sink has 30 messages and a new one takes over. Every message ends sent;
// each arrived exactly once, except messages flagged possibly_duplicated,
// which may have arrived twice; the flagged messages are exactly those in
// flight (status sending) at the kill.
//
// asynq v0.26 recovers a dead worker's active tasks only when their lease
// (30 s, extended every 5 s by the heartbeat) expired more than 30 s ago,
// and its recoverer looks every minute: the in-flight messages go out
// about a minute after the kill, which dominates this test's run time.
func TestWorkerKilledMidBatch(t *testing.T) {
	const n = 300
	sink := startSink(t, slowAccept)
	dbURL := testsvc.PostgresURL(t)
	g := newGateway(t, dbURL, "MAILGATE_RELAYS="+relayURL(sink.Port, ""),
		"MAILGATE_ALLOWED_SENDER_DOMAINS=allowed.example", "MAILGATE_WORKER_CONCURRENCY=4",
		"MAILGATE_RETRY_BASE=1s")
	token := g.createKey("messages:send", "messages:read")
	c := newClient(t, g.start("api"), token)
	worker := g.start("worker")

	msgs := make([]map[string]any, n)
	for i := range msgs {
		msgs[i] = simpleMessage(i)
	}
	ids := c.sendBatch(msgs)
	if !sink.WaitMessages(30, 60*time.Second) {
		t.Fatalf("sink has %d messages before the kill, want ≥ 30", len(sink.Messages()))
	}
	worker.kill()
	waitStatementsDone(t, dbURL)
	inFlight := c.listMessages("sending")
	t.Logf("killed the worker with %d messages at the sink and %d in flight", len(sink.Messages()), len(inFlight))
	if len(inFlight) == 0 {
		t.Fatal("no message was in flight at the kill: the test proves nothing")
	}
	g.start("worker")

	waitFor(t, 150*time.Second, "every message sent", func() bool {
		return len(copiesByID(t, sink.Messages())) == n && len(c.listMessages("sent")) == n
	})
	checkCopies(t, c, ids, inFlight, copiesByID(t, sink.Messages()))
}

// waitStatementsDone waits until no session of the database is running a
// statement or holding a transaction open (the API is idle at that point):
// a statement the killed worker sent just before the kill, such as the
// outcome of a message it had sent, still runs to its end on the server,
// and the messages "in flight at the kill" are only known once it has.
func waitStatementsDone(t *testing.T, url string) {
	t.Helper()
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	defer db.Close()
	waitFor(t, 30*time.Second, "the killed worker's statements to end", func() bool {
		var busy int
		err := db.QueryRowContext(context.Background(), `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND pid <> pg_backend_pid() AND state <> 'idle'`).Scan(&busy)
		if err != nil {
			t.Fatalf("pg_stat_activity: %v", err)
		}
		return busy == 0
	})
}

// checkCopies: one copy per message, two at most for flagged ones, and
// exactly the messages in flight at the kill flagged.
func checkCopies(t *testing.T, c *client, ids []string, inFlight []messageView, copies map[string]int) {
	t.Helper()
	flagged := map[string]bool{}
	for _, m := range c.listMessages("sent") {
		if m.PossiblyDuplicated {
			flagged[m.ID] = true
		}
	}
	twice := 0
	for _, id := range ids {
		switch n := copies[id]; {
		case n == 1:
		case n == 2 && flagged[id]:
			twice++
		default:
			t.Errorf("message %s arrived %d times (possibly_duplicated %v)", id, n, flagged[id])
		}
	}
	wasInFlight := map[string]bool{}
	for _, m := range inFlight {
		wasInFlight[m.ID] = true
		if !flagged[m.ID] {
			t.Errorf("message %s was in flight at the kill but is not flagged possibly_duplicated", m.ID)
		}
	}
	for id := range flagged {
		if !wasInFlight[id] {
			t.Errorf("message %s is flagged possibly_duplicated but was not in flight at the kill", id)
		}
	}
	t.Logf("%d messages flagged possibly_duplicated, %d of them delivered twice", len(flagged), twice)
}
