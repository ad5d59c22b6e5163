package store

import (
	"context"
	"fmt"
)

// CountSuppressionsByReason counts every project's suppressed addresses by
// reason (hard_bounce, complaint, soft_bounces, manual), for the
// mailgate_suppressions gauge. Reasons with no entry are absent.
func (s *Store) CountSuppressionsByReason(ctx context.Context) (map[string]int64, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT reason, COUNT(*) FROM suppressions GROUP BY reason`)
	if err != nil {
		return nil, fmt.Errorf("count suppressions by reason: %w", err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var reason string
		var n int64
		if err := rows.Scan(&reason, &n); err != nil {
			return nil, fmt.Errorf("count suppressions by reason: %w", err)
		}
		out[reason] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("count suppressions by reason: %w", err)
	}
	return out, nil
}
