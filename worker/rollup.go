package worker

import (
	"context"
	"fmt"
	"time"
)

// rollupLoop runs a rollup every RollupInterval until ctx is done.
func (w *Worker) rollupLoop(ctx context.Context) {
	t := time.NewTicker(w.cfg.RollupInterval)
	defer t.Stop()
	for {
		if _, err := w.RollUpOnce(ctx); err != nil && ctx.Err() == nil {
			w.deps.Log.Warn("event rollup", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// RollUpOnce adds the events written since the last rollup into the
// event counts the console's overview reads (store.RollUpEvents), pass
// after pass of RollupBatch events until a pass comes back short, and
// returns how many events it took. After a full pass it waits as long as
// that pass took (by the injected clock), so that working off a backlog
// (the first run over a large event log) takes at most about half of the
// database's writer. Several workers may run it at once: each pass locks
// the rollup's position first, so no event is counted twice.
func (w *Worker) RollUpOnce(ctx context.Context) (int, error) {
	total := 0
	for {
		start := w.cfg.Now()
		n, err := w.deps.Store.RollUpEvents(ctx, start, w.cfg.RollupBatch)
		total += n
		if err != nil {
			return total, fmt.Errorf("roll up events: %w", err)
		}
		if n < w.cfg.RollupBatch {
			return total, nil
		}
		if err := pause(ctx, w.cfg.Now().Sub(start)); err != nil {
			return total, err
		}
	}
}
