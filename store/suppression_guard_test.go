package store

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// TestCreateUnsuppressedMessages checks that the suppression check folded
// into the commit refuses, writing nothing, exactly when a recipient it
// was asked to write as queued is on its own project's list: in
// PostgreSQL's single statement, in its transaction form (a batch too
// large for one statement) and on SQLite.
func TestCreateUnsuppressedMessages(t *testing.T) {
	engines(t, func(t *testing.T, s *Store, clk *clock) {
		ctx := context.Background()
		other, err := s.CreateProject(ctx, "other")
		if err != nil {
			t.Fatalf("create project: %v", err)
		}
		for _, sp := range []Suppression{
			{ProjectID: DefaultProjectID, Email: "gone@example.com", Reason: "manual"},
			{ProjectID: other.ID, Email: "elsewhere@example.com", Reason: "manual"},
		} {
			if _, err := s.UpsertSuppression(ctx, sp); err != nil {
				t.Fatalf("suppress: %v", err)
			}
		}
		marked := newMsg("marked", clk.Now(), "a@example.org", "Gone@Example.com")
		marked.Recipients[1].Status = StatusSuppressed
		tests := []struct {
			name    string
			msgs    []NewMessage
			wantErr error
		}{
			{"none suppressed", []NewMessage{newMsg("clean", clk.Now(), "a@example.org", "b@example.org")}, nil},
			{"suppressed in another project", []NewMessage{newMsg("other", clk.Now(), "elsewhere@example.com")}, nil},
			{"already marked suppressed", []NewMessage{marked}, nil},
			{"suppressed, other case", []NewMessage{newMsg("hit", clk.Now(), "a@example.org", "GONE@example.COM")}, ErrSuppressedRecipient},
			{"suppressed in a large batch", largeBatch(clk.Now(), "gone@example.com"), ErrSuppressedRecipient},
			{"large batch, none suppressed", largeBatch(clk.Now(), "c@example.org"), nil},
		}
		for i, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				key := fmt.Sprintf("idem-%d", i)
				if _, err := s.ClaimIdempotencyKey(ctx, "k1", key, []byte("h"), time.Minute); err != nil {
					t.Fatalf("claim: %v", err)
				}
				idem := &IdempotencyResult{KeyID: "k1", Key: key, ResponseCode: 202, ResponseBody: []byte(`{}`)}
				err := s.CreateUnsuppressedMessages(ctx, tt.msgs, idem)
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("CreateUnsuppressedMessages = %v, want %v", err, tt.wantErr)
				}
				_, getErr := s.GetMessage(ctx, DefaultProjectID, tt.msgs[0].ID)
				if written := getErr == nil; written != (tt.wantErr == nil) {
					t.Errorf("message written = %v (%v), want %v", written, getErr, tt.wantErr == nil)
				}
				if tt.wantErr == nil {
					return
				}
				// Nothing written: the key is still held, so the caller's
				// second attempt can finish it.
				if err := s.CreateMessages(ctx, tt.msgs, idem); err != nil {
					t.Errorf("CreateMessages after the refusal = %v, want nil", err)
				}
			})
		}
	})
}

// largeBatch is 500 messages of 10 recipients (too many parameters for
// PostgreSQL's single statement), the last recipient of the last one last.
func largeBatch(created time.Time, last string) []NewMessage {
	emails := make([]string, 10)
	for i := range emails {
		emails[i] = fmt.Sprintf("r%d@example.org", i)
	}
	msgs := make([]NewMessage, 500)
	prefix := last[:1]
	for i := range msgs {
		msgs[i] = newMsg(fmt.Sprintf("%sbig%03d", prefix, i), created, emails...)
	}
	msgs[len(msgs)-1].Recipients[9].Email = last
	return msgs
}
