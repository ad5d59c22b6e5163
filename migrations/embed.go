// Package migrations holds mailgate's database schema as goose-annotated SQL
// files, one folder per dialect (postgres/ and sqlite/), embedded into the
// binary. It owns only the files; package store runs them.
package migrations

import "embed"

// FS holds postgres/*.sql and sqlite/*.sql. Both folders carry the same
// version numbers so that a migration exists once per dialect.
//
//go:embed postgres/*.sql sqlite/*.sql
var FS embed.FS
