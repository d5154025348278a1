package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func schemaVersions(t *testing.T, s *SQLite) []int {
	t.Helper()
	rows, err := s.read.QueryContext(context.Background(), `SELECT version FROM schema_version ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var vs []int
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		vs = append(vs, v)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return vs
}

func tableExists(t *testing.T, s *SQLite, name string) bool {
	t.Helper()
	var n int
	err := s.read.QueryRowContext(context.Background(),
		`SELECT COUNT(*) FROM sqlite_schema WHERE type = 'table' AND name = ?`, name).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n > 0
}

func TestMigrations(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "warren.db")
	open := func(steps []string) (*SQLite, error) {
		t.Helper()
		s, err := openSQLite(ctx, path, steps)
		if err == nil {
			t.Cleanup(func() { s.Close() })
		}
		return s, err
	}
	// upTo lists the versions 1..n.
	upTo := func(n int) []int {
		var vs []int
		for v := 1; v <= n; v++ {
			vs = append(vs, v)
		}
		return vs
	}
	n := len(migrations)
	want := func(s *SQLite, versions ...int) {
		t.Helper()
		if got := schemaVersions(t, s); !slices.Equal(got, versions) {
			t.Errorf("schema versions: got %v, want %v", got, versions)
		}
	}

	s, err := open(migrations)
	if err != nil {
		t.Fatal(err)
	}
	want(s, upTo(n)...)
	mustCreateToken(t, s, testToken("t1", "a", false))
	s.Close()

	// Reopening applies nothing.
	s, err = open(migrations)
	if err != nil {
		t.Fatalf("reopening: %v", err)
	}
	want(s, upTo(n)...)
	s.Close()

	// A new binary applies only its new step, and keeps the data.
	steps := append(migrations[:len(migrations):len(migrations)], `CREATE TABLE extra (x INTEGER) STRICT`)
	s, err = open(steps)
	if err != nil {
		t.Fatalf("opening with a new step: %v", err)
	}
	want(s, upTo(n+1)...)
	if !tableExists(t, s, "extra") {
		t.Errorf("new step not applied")
	}
	if got := len(mustLoad(t, s).Tokens); got != 1 {
		t.Errorf("tokens after migrating: got %d, want 1", got)
	}
	s.Close()

	// The old binary refuses the newer schema.
	_, err = OpenSQLite(ctx, path)
	if !errors.Is(err, errSchemaTooNew) {
		t.Fatalf("opening a newer schema: got %v, want errSchemaTooNew", err)
	}
	if msg := err.Error(); !strings.Contains(msg, fmt.Sprintf("version %d", n+1)) || !strings.Contains(msg, fmt.Sprintf("up to %d", n)) {
		t.Errorf("error %q does not name both versions", msg)
	}
}

func TestMigrationFailureRollsBack(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "warren.db")
	bad := append(migrations[:len(migrations):len(migrations)], `CREATE TABLE half (x); SELEC oops`)
	if _, err := openSQLite(ctx, path, bad); err == nil {
		t.Fatalf("opening with a broken step succeeded")
	}
	s, err := openSQLite(ctx, path, migrations)
	if err != nil {
		t.Fatalf("reopening: %v", err)
	}
	defer s.Close()
	if got := schemaVersions(t, s); len(got) != len(migrations) || got[len(got)-1] != len(migrations) {
		t.Errorf("schema versions: got %v, want 1..%d", got, len(migrations))
	}
	if tableExists(t, s, "half") {
		t.Errorf("a failed step left a table behind")
	}
}
