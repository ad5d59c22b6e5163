package store

import (
	"context"
	"fmt"
)

// CountMessagesByStatus counts every project's messages by status, for
// the messages-by-status gauge.
func (s *Store) CountMessagesByStatus(ctx context.Context) (map[string]int64, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT status, COUNT(*) FROM messages GROUP BY status`)
	if err != nil {
		return nil, fmt.Errorf("count messages by status: %w", err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var st string
		var n int64
		if err := rows.Scan(&st, &n); err != nil {
			return nil, fmt.Errorf("count messages by status: %w", err)
		}
		out[st] = n
	}
	return out, rows.Err()
}
