package worker

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/mailgate/mailgate/internal/testsvc"
	"github.com/mailgate/mailgate/store"
)

// TestRollUpOnce: two workers rolling up at once, in passes smaller than
// the backlog, count every event once, and the overview shows them.
func TestRollUpOnce(t *testing.T) {
	for dialect, url := range testsvc.DatabaseURLs(t) {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			st, err := store.Open(ctx, store.Config{URL: url})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			if err := st.MigrateUp(ctx); err != nil {
				t.Fatal(err)
			}
			now := time.Now().UTC().Truncate(time.Second)
			const messages = 25
			for i := range messages {
				m := newMessage(fmt.Sprintf("01900000-0000-7000-8000-0000000003%02d", i), now.Add(-2*time.Minute), nil,
					store.StatusQueued)
				if _, err := st.CreateMessages(ctx, []store.NewMessage{m}, nil); err != nil {
					t.Fatal(err)
				}
			}
			cfg := Config{Now: func() time.Time { return now }, RollupBatch: 4}
			var wg sync.WaitGroup
			var mu sync.Mutex
			total := 0
			for range 2 {
				w := New(cfg, Deps{Store: st})
				wg.Go(func() {
					n, err := w.RollUpOnce(ctx)
					if err != nil {
						t.Error(err)
					}
					mu.Lock()
					total += n
					mu.Unlock()
				})
			}
			wg.Wait()
			if total != messages {
				t.Errorf("the workers took %d events, want %d", total, messages)
			}
			o, err := st.Overview(ctx, store.DefaultProjectID, store.WindowHour, "", now)
			if err != nil {
				t.Fatal(err)
			}
			if o.Total.Accepted != messages {
				t.Errorf("the overview counts %d accepted, want %d", o.Total.Accepted, messages)
			}
		})
	}
}
