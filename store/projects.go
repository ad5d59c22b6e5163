package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/google/uuid"
)

const projectColumns = "id, name, created_at"

// CreateProject creates a project with a generated UUIDv7 id. A taken name
// is ErrConflict.
func (s *Store) CreateProject(ctx context.Context, name string) (Project, error) {
	if name == "" {
		return Project{}, errors.New("create project: empty name")
	}
	id, err := uuid.NewV7()
	if err != nil {
		return Project{}, fmt.Errorf("create project: new id: %w", err)
	}
	p := Project{ID: id.String(), Name: name, CreatedAt: fromMicros(micros(s.now()))}
	res, err := s.db.ExecContext(ctx,
		`INSERT INTO projects (id, name, created_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING`,
		p.ID, p.Name, micros(p.CreatedAt))
	if err != nil {
		return Project{}, fmt.Errorf("create project %q: %w", name, err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return Project{}, fmt.Errorf("create project %q: %w", name, ErrConflict)
	}
	return p, nil
}

// ListProjects lists every project, oldest first.
func (s *Store) ListProjects(ctx context.Context) ([]Project, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT `+projectColumns+` FROM projects ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("list projects: %w", err)
	}
	defer rows.Close()
	var out []Project
	for rows.Next() {
		p, err := scanProject(rows)
		if err != nil {
			return nil, fmt.Errorf("list projects: %w", err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list projects: %w", err)
	}
	return out, nil
}

// ProjectByName finds a project by name, or ErrNotFound.
func (s *Store) ProjectByName(ctx context.Context, name string) (Project, error) {
	row := s.rdb.QueryRowContext(ctx, `SELECT `+projectColumns+` FROM projects WHERE name = $1`, name)
	p, err := scanProject(row)
	if err != nil {
		return Project{}, fmt.Errorf("project %q: %w", name, notFound(err))
	}
	return p, nil
}

// ProjectByID finds a project by id, or ErrNotFound.
func (s *Store) ProjectByID(ctx context.Context, id string) (Project, error) {
	row := s.rdb.QueryRowContext(ctx, `SELECT `+projectColumns+` FROM projects WHERE id = $1`, id)
	p, err := scanProject(row)
	if err != nil {
		return Project{}, fmt.Errorf("project %s: %w", id, notFound(err))
	}
	return p, nil
}

// scanner is *sql.Row or *sql.Rows.
type scanner interface{ Scan(dest ...any) error }

func scanProject(r scanner) (Project, error) {
	var p Project
	var created int64
	if err := r.Scan(&p.ID, &p.Name, &created); err != nil {
		return Project{}, err
	}
	p.CreatedAt = fromMicros(created)
	return p, nil
}

// notFound turns sql.ErrNoRows into ErrNotFound.
func notFound(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	return err
}
