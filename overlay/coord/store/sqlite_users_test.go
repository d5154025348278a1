package store

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/warrennet/warren/overlay/wire"
)

func testUser(email string, groups ...string) User {
	return User{
		Email: email, Issuer: "https://idp.example.com", Subject: "sub-" + email, Groups: groups,
		LastLogin: t0, ValidatedAt: t0, RefreshToken: "refresh-" + email,
	}
}

func loginParams(i int, name string) LoginParams {
	p := params("", i)
	return LoginParams{NodeID: p.NodeID, PublicKey: p.PublicKey, CredHash: p.CredHash, Name: name, Now: t0}
}

func mustLoginEnroll(t *testing.T, s *SQLite, u User, p LoginParams) Node {
	t.Helper()
	n, _, err := s.LoginEnroll(context.Background(), u, p)
	if err != nil {
		t.Fatalf("LoginEnroll(%s, %s): %v", u.Email, p.Name, err)
	}
	return n
}

func nodeNames(st *State) map[string]string {
	out := map[string]string{}
	for _, n := range st.Nodes {
		out[n.Name] = n.User
	}
	return out
}

func TestLoginEnroll(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	alice := testUser("alice@example.com", "eng")
	n, v, err := s.LoginEnroll(ctx, alice, loginParams(1, "laptop"))
	if err != nil {
		t.Fatal(err)
	}
	want := Node{Node: wire.Node{ID: "node1", Name: "laptop", Role: wire.RoleClient, PublicKey: testKey(1),
		Address: n.Address, User: "alice@example.com"}, CredHash: "cred1", EnrolledAt: t0}
	if diff := cmp.Diff(want, n, cmpOpts); diff != "" {
		t.Errorf("LoginEnroll (-want +got):\n%s", diff)
	}
	if v != 1 {
		t.Errorf("version %d, want 1", v)
	}
	// The same name again, from alice and from bob: suffixes.
	mustLoginEnroll(t, s, alice, loginParams(2, "laptop"))
	mustLoginEnroll(t, s, testUser("bob@example.com"), loginParams(3, "laptop"))
	st := mustLoad(t, s)
	if diff := cmp.Diff(map[string]string{"laptop": "alice@example.com", "laptop-2": "alice@example.com", "laptop-3": "bob@example.com"}, nodeNames(st)); diff != "" {
		t.Errorf("nodes (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]User{alice, testUser("bob@example.com")}, st.Users, cmpOpts); diff != "" {
		t.Errorf("users (-want +got):\n%s", diff)
	}
	if st.Version != 3 {
		t.Errorf("version %d, want 3", st.Version)
	}
	// A key already enrolled: refused, nothing changes.
	if _, _, err := s.LoginEnroll(ctx, testUser("carol@example.com"), loginParams(1, "other")); !errors.Is(err, ErrExists) {
		t.Errorf("LoginEnroll with a taken key: %v, want ErrExists", err)
	}
	if diff := cmp.Diff(st, mustLoad(t, s), cmpOpts); diff != "" {
		t.Errorf("a refused LoginEnroll changed the state (-before +after):\n%s", diff)
	}
}

func TestLoginEnrollNewSubjectDropsOldLogins(t *testing.T) {
	s, _ := openTest(t)
	tok := testToken("t1", "desk", false)
	tok.User = "alice@example.com"
	mustCreateToken(t, s, tok)
	mustEnroll(t, s, params("hash-t1", 1))
	mustLoginEnroll(t, s, testUser("alice@example.com"), loginParams(2, "laptop"))
	// The address now belongs to another person at the provider.
	other := testUser("alice@example.com")
	other.Subject = "someone-else"
	mustLoginEnroll(t, s, other, loginParams(3, "laptop"))
	if diff := cmp.Diff(map[string]string{"desk": "alice@example.com", "laptop": "alice@example.com"}, nodeNames(mustLoad(t, s))); diff != "" {
		t.Errorf("nodes (-want +got):\n%s", diff)
	}
	if got := mustLoad(t, s).Nodes; len(got) != 2 || got[1].ID != "node3" {
		t.Errorf("nodes %+v: want desk and the new laptop (node3)", got)
	}
}

func TestUpdateUser(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		drop DropNodes
		want map[string]string
	}{
		{KeepNodes, map[string]string{"desk": "alice@example.com", "laptop": "alice@example.com", "pc": "bob@example.com"}},
		{DropLoginNodes, map[string]string{"desk": "alice@example.com", "pc": "bob@example.com"}},
		{DropAllNodes, map[string]string{"pc": "bob@example.com"}},
	} {
		s, _ := openTest(t)
		tok := testToken("t1", "desk", false)
		tok.User = "alice@example.com"
		mustCreateToken(t, s, tok)
		mustEnroll(t, s, params("hash-t1", 1))
		alice := testUser("alice@example.com", "eng")
		mustLoginEnroll(t, s, alice, loginParams(2, "laptop"))
		mustLoginEnroll(t, s, testUser("bob@example.com"), loginParams(3, "pc"))

		alice.Groups, alice.Disabled, alice.Reason = nil, true, "disabled"
		alice.ValidatedAt = t0.Add(time.Hour)
		v, err := s.UpdateUser(ctx, alice, tt.drop)
		if err != nil {
			t.Fatal(err)
		}
		st := mustLoad(t, s)
		if v != 4 || st.Version != 4 {
			t.Errorf("drop %d: version %d (loaded %d), want 4", tt.drop, v, st.Version)
		}
		if diff := cmp.Diff(tt.want, nodeNames(st)); diff != "" {
			t.Errorf("drop %d: nodes (-want +got):\n%s", tt.drop, diff)
		}
		if diff := cmp.Diff(alice, st.Users[0], cmpOpts); diff != "" {
			t.Errorf("drop %d: user (-want +got):\n%s", tt.drop, diff)
		}
	}
	s, _ := openTest(t)
	if _, err := s.UpdateUser(ctx, testUser("nobody@example.com"), DropAllNodes); !errors.Is(err, ErrNotFound) {
		t.Errorf("UpdateUser of an unknown user: %v, want ErrNotFound", err)
	}
}

func TestDeleteUser(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	tok := testToken("t1", "desk", false)
	tok.User = "carol@example.com"
	mustCreateToken(t, s, tok)
	mustEnroll(t, s, params("hash-t1", 1))
	mustLoginEnroll(t, s, testUser("alice@example.com"), loginParams(2, "laptop"))
	mustLoginEnroll(t, s, testUser("alice@example.com"), loginParams(3, "phone"))
	mustLoginEnroll(t, s, testUser("bob@example.com"), loginParams(4, "pc"))

	if _, err := s.DeleteUser(ctx, "alice@example.com"); err != nil {
		t.Fatal(err)
	}
	// A user only a token's node carries.
	v, err := s.DeleteUser(ctx, "carol@example.com")
	if err != nil {
		t.Fatal(err)
	}
	st := mustLoad(t, s)
	if diff := cmp.Diff(map[string]string{"pc": "bob@example.com"}, nodeNames(st)); diff != "" {
		t.Errorf("nodes (-want +got):\n%s", diff)
	}
	if len(st.Users) != 1 || st.Users[0].Email != "bob@example.com" {
		t.Errorf("users %+v, want bob", st.Users)
	}
	if v != 6 || st.Version != 6 {
		t.Errorf("version %d (loaded %d), want 6", v, st.Version)
	}
	if _, err := s.DeleteUser(ctx, "alice@example.com"); !errors.Is(err, ErrNotFound) {
		t.Errorf("DeleteUser again: %v, want ErrNotFound", err)
	}
	if mustLoad(t, s).Version != 6 {
		t.Errorf("a refused DeleteUser bumped the version")
	}
}

func TestMigration4KeepsNodes(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "warren.db")
	s, err := openSQLite(ctx, path, migrations[:3])
	if err != nil {
		t.Fatal(err)
	}
	tok := testToken("t1", "desk", false)
	tok.User = "alice@example.com"
	mustCreateToken(t, s, tok)
	before := mustEnroll(t, s, params("hash-t1", 1))
	s.Close()
	s, err = openSQLite(ctx, path, migrations)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	st := mustLoad(t, s)
	if diff := cmp.Diff([]Node{before}, st.Nodes, cmpOpts); diff != "" {
		t.Errorf("nodes after migration 4 (-want +got):\n%s", diff)
	}
	// The node's token may not be deleted from under it, and a node with
	// neither token nor user is refused.
	if _, err := s.write.ExecContext(ctx, `DELETE FROM tokens WHERE id = 't1'`); err == nil {
		t.Errorf("deleting a node's token succeeded: the foreign key is gone")
	}
	if _, err := s.write.ExecContext(ctx, `INSERT INTO nodes (id, name, role, public_key, address, cred_hash, token_id, enrolled_at)
		VALUES ('x', 'x', 'client', 'k', 'a', 'c', NULL, ?)`, formatTime(t0)); err == nil {
		t.Errorf("a node with neither token nor user was stored")
	}
}
