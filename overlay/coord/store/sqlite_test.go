package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/warrennet/warren/overlay/wire"
)

// t0 is the tests' clock: nanoseconds set, so lost precision shows.
var t0 = time.Date(2025, 3, 4, 5, 6, 7, 123456789, time.UTC)

// cmpOpts compares netip values, whose fields are unexported, with ==.
var cmpOpts = cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{})

// elsewhere is a zone that is not UTC, to check times come back in UTC.
var elsewhere = time.FixedZone("elsewhere", 5*3600+1800)

func openTest(t *testing.T) (*SQLite, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "warren.db")
	s, err := OpenSQLite(context.Background(), path)
	if err != nil {
		t.Fatalf("OpenSQLite: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s, path
}

func mustLoad(t *testing.T, s *SQLite) *State {
	t.Helper()
	st, err := s.Load(context.Background())
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return st
}

func testToken(id, name string, reusable bool) Token {
	return Token{
		TokenInfo: wire.TokenInfo{
			ID:        id,
			Name:      name,
			Role:      wire.RoleClient,
			Reusable:  reusable,
			CreatedAt: t0,
		},
		Hash: "hash-" + id,
	}
}

func mustCreateToken(t *testing.T, s *SQLite, tok Token) {
	t.Helper()
	if err := s.CreateToken(context.Background(), tok); err != nil {
		t.Fatalf("CreateToken(%s): %v", tok.ID, err)
	}
}

func testKey(i int) wire.Key {
	var k wire.Key
	binary.BigEndian.PutUint32(k[:], uint32(i)+1)
	return k
}

// params enrolls node i with the token whose hash is hash.
func params(hash string, i int) EnrollParams {
	return EnrollParams{
		TokenHash: hash,
		NodeID:    fmt.Sprintf("node%d", i),
		PublicKey: testKey(i),
		CredHash:  fmt.Sprintf("cred%d", i),
		Now:       t0,
	}
}

func mustEnroll(t *testing.T, s *SQLite, p EnrollParams) Node {
	t.Helper()
	n, _, err := s.Enroll(context.Background(), p)
	if err != nil {
		t.Fatalf("Enroll(%s): %v", p.NodeID, err)
	}
	return n
}

func TestLoadEmpty(t *testing.T) {
	s, _ := openTest(t)
	if diff := cmp.Diff(&State{}, mustLoad(t, s), cmpOpts); diff != "" {
		t.Errorf("Load of a new store (-want +got):\n%s", diff)
	}
}

func TestCreateToken(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	expires := t0.Add(time.Hour).In(elsewhere)
	first := testToken("t1", "laptop", false)
	first.CreatedAt = t0.In(elsewhere)
	first.ExpiresAt = &expires
	mustCreateToken(t, s, first)

	tests := []struct {
		name    string
		tok     Token
		wantErr error
	}{
		{"second", testToken("t2", "srv", true), nil},
		{"same id", Token{TokenInfo: testToken("t1", "x", false).TokenInfo, Hash: "other"}, ErrExists},
		{"same hash", Token{TokenInfo: testToken("t3", "x", false).TokenInfo, Hash: first.Hash}, ErrExists},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.CreateToken(ctx, tt.tok)
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("CreateToken: got %v, want %v", err, tt.wantErr)
			}
		})
	}

	got := mustLoad(t, s)
	want := &State{Tokens: []Token{first, testToken("t2", "srv", true)}}
	if diff := cmp.Diff(want, got, cmpOpts); diff != "" {
		t.Errorf("Load (-want +got):\n%s", diff)
	}
	if loc := got.Tokens[0].CreatedAt.Location(); loc != time.UTC {
		t.Errorf("CreatedAt location: got %v, want UTC", loc)
	}
	if loc := got.Tokens[0].ExpiresAt.Location(); loc != time.UTC {
		t.Errorf("ExpiresAt location: got %v, want UTC", loc)
	}
}

func TestTokensSorted(t *testing.T) {
	s, _ := openTest(t)
	var want []Token
	for i, c := range []struct {
		id string
		at time.Duration
	}{{"b", 0}, {"a", 0}, {"c", -time.Nanosecond}} {
		tok := testToken(c.id, "n", false)
		tok.Hash = fmt.Sprint(i)
		tok.CreatedAt = t0.Add(c.at)
		mustCreateToken(t, s, tok)
		want = append(want, tok)
	}
	want = []Token{want[2], want[1], want[0]}
	if diff := cmp.Diff(want, mustLoad(t, s).Tokens, cmpOpts); diff != "" {
		t.Errorf("tokens (-want +got):\n%s", diff)
	}
}

func TestRevokeToken(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	mustCreateToken(t, s, testToken("t1", "laptop", false))

	tests := []struct {
		id      string
		wantErr error
	}{
		{"t1", nil},
		{"t1", nil}, // idempotent
		{"nope", ErrNotFound},
	}
	for _, tt := range tests {
		if err := s.RevokeToken(ctx, tt.id); !errors.Is(err, tt.wantErr) {
			t.Errorf("RevokeToken(%s): got %v, want %v", tt.id, err, tt.wantErr)
		}
	}
	st := mustLoad(t, s)
	if !st.Tokens[0].Revoked {
		t.Errorf("token not revoked")
	}
	if st.Version != 0 {
		t.Errorf("version: got %d, want 0 (token writes do not bump it)", st.Version)
	}
}

func TestDeleteNode(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	mustCreateToken(t, s, testToken("t1", "gw", false))
	n := mustEnroll(t, s, params("hash-t1", 1))
	if _, err := s.AddRoute(ctx, wire.Route{Prefix: netip.MustParsePrefix("10.0.0.0/8"), Connector: "gw", CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}

	if _, err := s.DeleteNode(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("DeleteNode(nope): got %v, want ErrNotFound", err)
	}
	if got := mustLoad(t, s).Version; got != 2 {
		t.Errorf("version after failed delete: got %d, want 2", got)
	}
	v, err := s.DeleteNode(ctx, n.ID)
	if err != nil {
		t.Fatalf("DeleteNode: %v", err)
	}
	st := mustLoad(t, s)
	if v != 3 || st.Version != 3 {
		t.Errorf("version: got %d (returned) and %d (loaded), want 3", v, st.Version)
	}
	if len(st.Nodes) != 0 {
		t.Errorf("nodes after delete: got %v, want none", st.Nodes)
	}
	if len(st.Routes) != 1 {
		t.Errorf("routes after delete: got %v, want the route kept", st.Routes)
	}
	if _, err := s.DeleteNode(ctx, n.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("second DeleteNode: got %v, want ErrNotFound", err)
	}
}

func TestTouchNodes(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	mustCreateToken(t, s, testToken("t1", "a", true))
	mustEnroll(t, s, params("hash-t1", 1))
	mustEnroll(t, s, params("hash-t1", 2))

	if err := s.TouchNodes(ctx, nil); err != nil {
		t.Errorf("TouchNodes(nil): %v", err)
	}
	seen := t0.Add(time.Minute).In(elsewhere)
	if err := s.TouchNodes(ctx, map[string]time.Time{"node1": seen, "ghost": seen}); err != nil {
		t.Fatalf("TouchNodes: %v", err)
	}
	st := mustLoad(t, s)
	if st.Version != 2 {
		t.Errorf("version: got %d, want 2 (TouchNodes does not bump it)", st.Version)
	}
	got := map[string]*time.Time{}
	for _, n := range st.Nodes {
		got[n.ID] = n.LastSeen
	}
	want := map[string]*time.Time{"node1": &seen, "node2": nil}
	if diff := cmp.Diff(want, got, cmpOpts); diff != "" {
		t.Errorf("last seen (-want +got):\n%s", diff)
	}
	if loc := got["node1"].Location(); loc != time.UTC {
		t.Errorf("LastSeen location: got %v, want UTC", loc)
	}
}

func TestRoutes(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	route := func(p, conn string) wire.Route {
		return wire.Route{Prefix: netip.MustParsePrefix(p), Connector: conn, Comment: "c " + p, CreatedAt: t0}
	}
	added := []wire.Route{
		route("fd00::/8", "a"),
		route("10.0.0.0/16", "a"),
		route("192.168.1.0/24", "b"),
		route("10.0.0.0/8", "a"),
		route("::/0", "b"),
		route("9.0.0.0/8", "b"),
		route("10.0.0.0/8", "c"), // replaces the earlier 10/8
	}
	for i, r := range added {
		v, err := s.AddRoute(ctx, r)
		if err != nil {
			t.Fatalf("AddRoute(%v): %v", r.Prefix, err)
		}
		if want := uint64(i + 1); v != want {
			t.Errorf("AddRoute(%v): version %d, want %d", r.Prefix, v, want)
		}
	}
	want := []wire.Route{
		route("9.0.0.0/8", "b"),
		route("10.0.0.0/8", "c"),
		route("10.0.0.0/16", "a"),
		route("192.168.1.0/24", "b"),
		route("::/0", "b"),
		route("fd00::/8", "a"),
	}
	if diff := cmp.Diff(want, mustLoad(t, s).Routes, cmpOpts); diff != "" {
		t.Errorf("routes (-want +got):\n%s", diff)
	}

	if _, err := s.AddRoute(ctx, wire.Route{Connector: "a"}); err == nil {
		t.Errorf("AddRoute with an invalid prefix succeeded")
	}
	unmasked := route("172.16.1.2/12", "a")
	if _, err := s.AddRoute(ctx, unmasked); err != nil {
		t.Fatalf("AddRoute(%v): %v", unmasked.Prefix, err)
	}
	if _, err := s.RemoveRoute(ctx, netip.MustParsePrefix("172.16.0.0/12")); err != nil {
		t.Errorf("RemoveRoute of the masked form: %v", err)
	}

	for _, tt := range []struct {
		prefix  string
		wantErr error
	}{
		{"10.0.0.0/8", nil},
		{"10.0.0.0/8", ErrNotFound},
		{"10.0.0.0/24", ErrNotFound}, // exact match only
		{"::/0", nil},
	} {
		v0 := mustLoad(t, s).Version
		v, err := s.RemoveRoute(ctx, netip.MustParsePrefix(tt.prefix))
		if !errors.Is(err, tt.wantErr) {
			t.Errorf("RemoveRoute(%s): got %v, want %v", tt.prefix, err, tt.wantErr)
		}
		wantV := v0
		if tt.wantErr == nil {
			wantV = v0 + 1
			if v != wantV {
				t.Errorf("RemoveRoute(%s): returned version %d, want %d", tt.prefix, v, wantV)
			}
		}
		if got := mustLoad(t, s).Version; got != wantV {
			t.Errorf("RemoveRoute(%s): version %d, want %d", tt.prefix, got, wantV)
		}
	}
	want = []wire.Route{want[0], want[2], want[3], want[5]}
	if diff := cmp.Diff(want, mustLoad(t, s).Routes, cmpOpts); diff != "" {
		t.Errorf("routes after removals (-want +got):\n%s", diff)
	}
}

func TestSetSplit(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	policies := []wire.SplitPolicy{
		{Mode: wire.SplitExclude},
		{
			Mode:    wire.SplitInclude,
			Include: []wire.SplitEntry{{Prefix: netip.MustParsePrefix("10.0.0.0/8"), Comment: "corp"}},
			Exclude: []wire.SplitEntry{{Prefix: netip.MustParsePrefix("fe80::/10"), Builtin: true}},
		},
		{Mode: wire.SplitExclude, Include: []wire.SplitEntry{}, Exclude: []wire.SplitEntry{}},
	}
	for i, p := range policies {
		v, err := s.SetSplit(ctx, p)
		if err != nil {
			t.Fatalf("SetSplit #%d: %v", i, err)
		}
		st := mustLoad(t, s)
		if want := uint64(i + 1); v != want || st.Version != want {
			t.Errorf("SetSplit #%d: version %d (returned), %d (loaded), want %d", i, v, st.Version, want)
		}
		if diff := cmp.Diff(&p, st.Split, cmpOpts); diff != "" {
			t.Errorf("SetSplit #%d: split (-want +got):\n%s", i, diff)
		}
	}
}

// TestVersion walks through every write and checks which ones bump the
// version.
func TestVersion(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	p10 := netip.MustParsePrefix("10.0.0.0/8")
	steps := []struct {
		name string
		bump bool
		do   func() error
	}{
		{"CreateToken", false, func() error { return s.CreateToken(ctx, testToken("t1", "a", true)) }},
		{"RevokeToken unknown", false, func() error { return s.RevokeToken(ctx, "nope") }},
		{"Enroll", true, func() error { _, _, err := s.Enroll(ctx, params("hash-t1", 1)); return err }},
		{"Enroll failing", false, func() error { _, _, err := s.Enroll(ctx, params("nope", 2)); return err }},
		{"TouchNodes", false, func() error { return s.TouchNodes(ctx, map[string]time.Time{"node1": t0}) }},
		{"AddRoute", true, func() error { _, err := s.AddRoute(ctx, wire.Route{Prefix: p10, CreatedAt: t0}); return err }},
		{"AddRoute again", true, func() error { _, err := s.AddRoute(ctx, wire.Route{Prefix: p10, CreatedAt: t0}); return err }},
		{"SetSplit", true, func() error { _, err := s.SetSplit(ctx, wire.SplitPolicy{Mode: wire.SplitExclude}); return err }},
		{"RemoveRoute", true, func() error { _, err := s.RemoveRoute(ctx, p10); return err }},
		{"RemoveRoute unknown", false, func() error { _, err := s.RemoveRoute(ctx, p10); return err }},
		{"AddHost", true, func() error {
			_, err := s.AddHost(ctx, wire.Host{Name: "h", Address: p10.Addr(), CreatedAt: t0})
			return err
		}},
		{"AddHost taken", false, func() error {
			_, err := s.AddHost(ctx, wire.Host{Name: "h", Address: p10.Addr(), CreatedAt: t0})
			return err
		}},
		{"RemoveHost", true, func() error { _, err := s.RemoveHost(ctx, "h"); return err }},
		{"RemoveHost unknown", false, func() error { _, err := s.RemoveHost(ctx, "h"); return err }},
		{"SetPolicy", true, func() error { doc := "{}"; _, err := s.SetPolicy(ctx, &doc, t0); return err }},
		{"SetPolicy nil", true, func() error { _, err := s.SetPolicy(ctx, nil, t0); return err }},
		{"RevokeToken", false, func() error { return s.RevokeToken(ctx, "t1") }},
		{"DeleteNode", true, func() error { _, err := s.DeleteNode(ctx, "node1"); return err }},
		{"DeleteNode unknown", false, func() error { _, err := s.DeleteNode(ctx, "node1"); return err }},
	}
	var want uint64
	for _, st := range steps {
		err := st.do()
		if st.bump {
			if err != nil {
				t.Fatalf("%s: %v", st.name, err)
			}
			want++
		}
		if got := mustLoad(t, s).Version; got != want {
			t.Errorf("after %s: version %d, want %d", st.name, got, want)
		}
	}
}
