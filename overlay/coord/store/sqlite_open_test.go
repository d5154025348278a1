package store

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/warrennet/warren/overlay/wire"
)

func TestOpenSettings(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	tests := []struct {
		db     string
		pragma string
		want   string
	}{
		{"write", "journal_mode", "wal"},
		{"write", "synchronous", "2"}, // FULL
		{"write", "foreign_keys", "1"},
		{"write", "busy_timeout", "5000"},
		{"read", "journal_mode", "wal"},
		{"read", "foreign_keys", "1"},
		{"read", "query_only", "1"},
	}
	for _, tt := range tests {
		db := s.write
		if tt.db == "read" {
			db = s.read
		}
		var got string
		if err := db.QueryRowContext(ctx, "PRAGMA "+tt.pragma).Scan(&got); err != nil {
			t.Fatalf("%s: PRAGMA %s: %v", tt.db, tt.pragma, err)
		}
		if got != tt.want {
			t.Errorf("%s: PRAGMA %s = %q, want %q", tt.db, tt.pragma, got, tt.want)
		}
	}
}

func TestOpenPathWithQuestionMark(t *testing.T) {
	path := filepath.Join(t.TempDir(), "odd?name#1 %20.db")
	s, err := OpenSQLite(context.Background(), path)
	if err != nil {
		t.Fatalf("OpenSQLite: %v", err)
	}
	defer s.Close()
	if _, err := os.Stat(path); err != nil {
		t.Errorf("database not at the path given: %v", err)
	}
}

func TestOpenError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing", "warren.db")
	if _, err := OpenSQLite(context.Background(), path); err == nil {
		t.Fatalf("OpenSQLite(%s) succeeded, want an error", path)
	}
}

func TestCloseIdempotent(t *testing.T) {
	s, err := OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "warren.db"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := s.Close(); err != nil {
			t.Errorf("Close #%d: %v", i+1, err)
		}
	}
	if _, err := s.Load(context.Background()); err == nil {
		t.Errorf("Load after Close succeeded, want an error")
	}
}

func TestPersistence(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "warren.db")
	s, err := OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	expires := t0.Add(24 * time.Hour)
	tok := testToken("t1", "laptop", false)
	tok.ExpiresAt = &expires
	mustCreateToken(t, s, tok)
	mustCreateToken(t, s, testToken("t2", "srv", true))
	if err := s.RevokeToken(ctx, "t2"); err != nil {
		t.Fatal(err)
	}
	mustEnroll(t, s, params("hash-t1", 1))
	if err := s.TouchNodes(ctx, map[string]time.Time{"node1": t0.Add(time.Second)}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddRoute(ctx, wire.Route{Prefix: netip.MustParsePrefix("fd00::/8"), Connector: "laptop", Comment: "v6", CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	split := wire.SplitPolicy{Mode: wire.SplitInclude, Include: []wire.SplitEntry{{Prefix: netip.MustParsePrefix("10.0.0.0/8")}}}
	if _, err := s.SetSplit(ctx, split); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddHost(ctx, wire.Host{Name: "web", Address: netip.MustParseAddr("192.168.0.10"), CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	doc := `{"rules": []}`
	if _, err := s.SetPolicy(ctx, &doc, t0); err != nil {
		t.Fatal(err)
	}
	want := mustLoad(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s2, err := OpenSQLite(ctx, path)
	if err != nil {
		t.Fatalf("reopening: %v", err)
	}
	defer s2.Close()
	got := mustLoad(t, s2)
	if diff := cmp.Diff(want, got, cmpOpts); diff != "" {
		t.Errorf("Load after reopening (-before +after):\n%s", diff)
	}
	if len(got.Tokens) != 2 || len(got.Nodes) != 1 || len(got.Routes) != 1 || got.Split == nil ||
		len(got.Hosts) != 1 || got.Policy == nil || got.Version != 5 {
		t.Errorf("reopened state is missing writes: %+v", got)
	}
	// The address counter survives too.
	mustCreateToken(t, s2, testToken("t3", "desk", false))
	if n := mustEnroll(t, s2, params("hash-t3", 2)); n.Address != netip.MustParseAddr("100.96.0.2") {
		t.Errorf("address after reopening: got %v, want 100.96.0.2", n.Address)
	}
}
