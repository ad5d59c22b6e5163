package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"modernc.org/sqlite"
)

// openCachingSQLite opens a one-connection SQLite pool with statement
// caches of size statements, and a table t(k primary key, v).
func openCachingSQLite(t *testing.T, size int) *sql.DB {
	t.Helper()
	c, err := sqlite.NewConnector("file:" + filepath.Join(t.TempDir(), "cache.db") + "?_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(sizedConnector{cachingConnector{c}, size})
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	if _, err := db.Exec(`CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	return db
}

// sizedConnector is cachingConnector with a chosen cache size.
type sizedConnector struct {
	cachingConnector
	size int
}

func (c sizedConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return newCachingConn(conn, c.size), nil
}

// cached lists the query texts db's one connection holds, most recent
// first.
func cached(t *testing.T, db *sql.DB) []string {
	t.Helper()
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var out []string
	err = conn.Raw(func(dc any) error {
		c, ok := dc.(*cachingConn)
		if !ok {
			return errors.New("not a caching connection")
		}
		for e := c.lru.Front(); e != nil; e = e.Next() {
			out = append(out, e.Value.(*cachedStmt).query)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestStatementCache(t *testing.T) {
	const (
		insert = `INSERT INTO t (k, v) VALUES ($1, $2)`
		read   = `SELECT k, v FROM t WHERE k >= $1 ORDER BY k`
		update = `UPDATE t SET v = v || '!' WHERE k = $1`
	)
	t.Run("reuses a statement and survives its errors", func(t *testing.T) {
		db := openCachingSQLite(t, 8)
		for i, k := range []int{1, 2, 1, 3} {
			_, err := db.Exec(insert, k, "v")
			if wantErr := i == 2; (err != nil) != wantErr {
				t.Fatalf("insert %d: err %v, want an error: %v", k, err, wantErr)
			}
		}
		var n int
		if err := db.QueryRow(`SELECT count(*) FROM t`).Scan(&n); err != nil || n != 3 {
			t.Fatalf("count = %d, %v; want 3", n, err)
		}
		if got := cached(t, db); strings.Count(strings.Join(got, "\n"), insert) != 1 {
			t.Fatalf("cache %q: want the insert once", got)
		}
		long := insert + strings.Repeat(" ", maxCachedQuery)
		if _, err := db.Exec(long, 4, "v"); err != nil {
			t.Fatalf("long insert: %v", err)
		}
		if got := cached(t, db); slices.Contains(got, long) || !slices.Contains(got, insert) {
			t.Fatalf("cache %q: a text over maxCachedQuery was cached", got)
		}
	})
	t.Run("a statement busy with open rows runs again uncached", func(t *testing.T) {
		db := openCachingSQLite(t, 8)
		for k := 1; k <= 3; k++ {
			if _, err := db.Exec(insert, k, "v"); err != nil {
				t.Fatal(err)
			}
		}
		tx, err := db.Begin()
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		outer, err := tx.Query(read, 1)
		if err != nil {
			t.Fatal(err)
		}
		var keys []int
		for outer.Next() {
			var k int
			var v string
			if err := outer.Scan(&k, &v); err != nil {
				t.Fatal(err)
			}
			keys = append(keys, k)
			// The same text while outer is open, and an update per row.
			var inner int
			if err := tx.QueryRow(read, k).Scan(&inner, &v); err != nil || inner != k {
				t.Fatalf("inner read at %d = %d, %v", k, inner, err)
			}
			if _, err := tx.Exec(update, k); err != nil {
				t.Fatal(err)
			}
		}
		if err := outer.Close(); err != nil || len(keys) != 3 {
			t.Fatalf("outer rows: keys %v, %v", keys, err)
		}
		var v string
		if err := tx.QueryRow(read, 3).Scan(new(int), &v); err != nil || v != "v!" {
			t.Fatalf("after: %q, %v; want v!", v, err)
		}
	})
	t.Run("keeps at most size statements, rows outliving their eviction", func(t *testing.T) {
		db := openCachingSQLite(t, 2)
		if _, err := db.Exec(insert, 1, "a"); err != nil {
			t.Fatal(err)
		}
		tx, err := db.Begin()
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		rows, err := tx.Query(read, 0)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 3 { // three other texts evict read
			if _, err := tx.Exec(update+strings.Repeat(" ", i), 1); err != nil {
				t.Fatal(err)
			}
		}
		if !rows.Next() {
			t.Fatalf("evicted statement's rows: %v", rows.Err())
		}
		var k int
		var v string
		if err := rows.Scan(&k, &v); err != nil || k != 1 {
			t.Fatalf("row = %d %q, %v", k, v, err)
		}
		if err := rows.Close(); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		got := cached(t, db)
		if len(got) != 2 || strings.TrimSpace(got[0]) != update {
			t.Fatalf("cache %q: want the two latest update texts", got)
		}
		if err := db.QueryRow(read, 1).Scan(&k, &v); err != nil || v != "a!!!" {
			t.Fatalf("read after eviction = %q, %v; want a!!!", v, err)
		}
	})
}

// TestStatementCacheKeepsColumnTypes: rows read through a cached
// statement describe their columns as the driver's own rows do.
func TestStatementCacheKeepsColumnTypes(t *testing.T) {
	db := openCachingSQLite(t, 8)
	rows, err := db.Query(`SELECT k, v FROM t`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	types, err := rows.ColumnTypes()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ct := range types {
		got = append(got, ct.DatabaseTypeName())
	}
	if want := []string{"INTEGER", "TEXT"}; !slices.Equal(got, want) {
		t.Errorf("column types %v, want %v", got, want)
	}
}
