package store

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/warrennet/warren/overlay/wire"
)

// overlaySize is the number of addresses in overlayPrefix.
const overlaySize = 1 << 20

// setNextAddress moves the address counter, to reach the ends of a /24 or
// of the overlay without enrolling thousands of nodes.
func setNextAddress(t *testing.T, s *SQLite, off int64) {
	t.Helper()
	if _, err := s.write.ExecContext(context.Background(), `UPDATE meta SET value = ? WHERE key = 'next_address'`, off); err != nil {
		t.Fatal(err)
	}
}

func TestEnroll(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	tok := testToken("t1", "gw", false)
	tok.Role = wire.RoleConnector
	mustCreateToken(t, s, tok)

	p := params("hash-t1", 1)
	p.Now = t0.In(elsewhere)
	n, v, err := s.Enroll(ctx, p)
	if err != nil {
		t.Fatalf("Enroll: %v", err)
	}
	want := Node{
		Node: wire.Node{
			ID:        "node1",
			Name:      "gw",
			Role:      wire.RoleConnector,
			PublicKey: testKey(1),
			Address:   netip.MustParseAddr("100.96.0.1"),
		},
		CredHash:   "cred1",
		TokenID:    "t1",
		EnrolledAt: t0,
	}
	if diff := cmp.Diff(want, n, cmpOpts); diff != "" {
		t.Errorf("Enroll (-want +got):\n%s", diff)
	}
	if n.EnrolledAt.Location() != time.UTC {
		t.Errorf("EnrolledAt location: got %v, want UTC", n.EnrolledAt.Location())
	}
	if v != 1 {
		t.Errorf("version: got %d, want 1", v)
	}
	tok.Uses = 1
	wantState := &State{Version: 1, Tokens: []Token{tok}, Nodes: []Node{want}}
	if diff := cmp.Diff(wantState, mustLoad(t, s), cmpOpts); diff != "" {
		t.Errorf("Load (-want +got):\n%s", diff)
	}
}

func TestEnrollRefused(t *testing.T) {
	ctx := context.Background()
	expired := testToken("expired", "e", true)
	expiry := t0
	expired.ExpiresAt = &expiry
	revoked := testToken("revoked", "r", true)
	revoked.Revoked = true
	revokedExpired := revoked
	revokedExpired.ID, revokedExpired.Hash, revokedExpired.ExpiresAt = "revexp", "hash-revexp", &expiry
	used := testToken("used", "u", false)
	used.Uses = 1
	// other enrolls node0 as reuse-1, the name reuse's first use needs.
	other := testToken("other", "reuse-1", false)
	reuse := testToken("reuse", "reuse", true)

	tests := []struct {
		name    string
		p       EnrollParams
		wantErr error
	}{
		{"unknown token", params("nope", 1), ErrNotFound},
		{"expired", params("hash-expired", 1), ErrTokenExpired},
		{"revoked", params("hash-revoked", 1), ErrTokenRevoked},
		{"revoked and expired", params("hash-revexp", 1), ErrTokenRevoked},
		{"used", params("hash-used", 1), ErrTokenUsed},
		{"reusable name taken", params("hash-reuse", 1), ErrNameTaken},
		{"same node id", EnrollParams{TokenHash: "hash-fresh", NodeID: "node0", PublicKey: testKey(1), CredHash: "cred1", Now: t0}, ErrExists},
		{"same public key", EnrollParams{TokenHash: "hash-fresh", NodeID: "node1", PublicKey: testKey(0), CredHash: "cred1", Now: t0}, ErrExists},
		{"same credential", EnrollParams{TokenHash: "hash-fresh", NodeID: "node1", PublicKey: testKey(1), CredHash: "cred0", Now: t0}, ErrExists},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := openTest(t)
			for _, tok := range []Token{expired, revoked, revokedExpired, used, reuse, other, testToken("fresh", "fresh", false)} {
				mustCreateToken(t, s, tok)
			}
			mustEnroll(t, s, params("hash-other", 0))
			before := mustLoad(t, s)

			n, v, err := s.Enroll(ctx, tt.p)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Enroll: got %v, want %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(Node{}, n, cmpOpts); diff != "" || v != 0 {
				t.Errorf("Enroll returned a node or version on failure: %d, %+v", v, n)
			}
			if diff := cmp.Diff(before, mustLoad(t, s), cmpOpts); diff != "" {
				t.Errorf("failed Enroll changed the state (-before +after):\n%s", diff)
			}
			// The address counter did not move either.
			mustCreateToken(t, s, testToken("next", "next", false))
			if n := mustEnroll(t, s, params("hash-next", 9)); n.Address != netip.MustParseAddr("100.96.0.2") {
				t.Errorf("next address: got %v, want 100.96.0.2", n.Address)
			}
		})
	}

	t.Run("single-use name taken", func(t *testing.T) {
		s, _ := openTest(t)
		mustCreateToken(t, s, testToken("a", "laptop", false))
		mustCreateToken(t, s, testToken("b", "laptop", false))
		mustEnroll(t, s, params("hash-a", 1))
		before := mustLoad(t, s)
		if _, _, err := s.Enroll(ctx, params("hash-b", 2)); !errors.Is(err, ErrNameTaken) {
			t.Fatalf("Enroll: got %v, want ErrNameTaken", err)
		}
		if diff := cmp.Diff(before, mustLoad(t, s), cmpOpts); diff != "" {
			t.Errorf("failed Enroll changed the state (-before +after):\n%s", diff)
		}
	})
}

func TestEnrollExpiry(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	tok := testToken("t1", "a", true)
	expiry := t0.Add(time.Hour)
	tok.ExpiresAt = &expiry
	mustCreateToken(t, s, tok)
	tests := []struct {
		now     time.Time
		wantErr error
	}{
		{expiry.Add(-time.Nanosecond), nil},
		{expiry, ErrTokenExpired},
		{expiry.Add(time.Nanosecond), ErrTokenExpired},
	}
	for i, tt := range tests {
		p := params("hash-t1", i)
		p.Now = tt.now
		if _, _, err := s.Enroll(ctx, p); !errors.Is(err, tt.wantErr) {
			t.Errorf("Enroll at expiry%+v: got %v, want %v", tt.now.Sub(expiry), err, tt.wantErr)
		}
	}
}

func TestEnrollReusableNames(t *testing.T) {
	s, _ := openTest(t)
	mustCreateToken(t, s, testToken("t1", "srv", true))
	var got []string
	for i := range 3 {
		n := mustEnroll(t, s, params("hash-t1", i))
		got = append(got, n.Name+" "+n.Address.String())
	}
	want := []string{"srv-1 100.96.0.1", "srv-2 100.96.0.2", "srv-3 100.96.0.3"}
	if diff := cmp.Diff(want, got, cmpOpts); diff != "" {
		t.Errorf("names and addresses (-want +got):\n%s", diff)
	}
	if uses := mustLoad(t, s).Tokens[0].Uses; uses != 3 {
		t.Errorf("uses: got %d, want 3", uses)
	}
}

func TestEnrollAddresses(t *testing.T) {
	tests := []struct {
		name  string
		start int64
		want  []string // "" means ErrAddressSpace
	}{
		{"first", 1, []string{"100.96.0.1", "100.96.0.2"}},
		{"end of a /24", 253, []string{"100.96.0.253", "100.96.0.254", "100.96.1.1", "100.96.1.2"}},
		{"end of the overlay", overlaySize - 3, []string{"100.111.255.253", "100.111.255.254", "", ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := openTest(t)
			mustCreateToken(t, s, testToken("t1", "n", true))
			setNextAddress(t, s, tt.start)
			var got []string
			for i := range tt.want {
				before := mustLoad(t, s)
				n, _, err := s.Enroll(context.Background(), params("hash-t1", i))
				switch {
				case errors.Is(err, ErrAddressSpace):
					got = append(got, "")
					if diff := cmp.Diff(before, mustLoad(t, s), cmpOpts); diff != "" {
						t.Errorf("failed Enroll changed the state (-before +after):\n%s", diff)
					}
				case err != nil:
					t.Fatalf("Enroll #%d: %v", i, err)
				default:
					got = append(got, n.Address.String())
				}
			}
			if diff := cmp.Diff(tt.want, got, cmpOpts); diff != "" {
				t.Errorf("addresses (-want +got):\n%s", diff)
			}
		})
	}
}

func TestEnrollNeverReusesAddress(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	mustCreateToken(t, s, testToken("t1", "n", true))
	a := mustEnroll(t, s, params("hash-t1", 1))
	if _, err := s.DeleteNode(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	b := mustEnroll(t, s, params("hash-t1", 2))
	if b.Address == a.Address {
		t.Errorf("address %v reused after its node was deleted", a.Address)
	}
	if want := netip.MustParseAddr("100.96.0.2"); b.Address != want {
		t.Errorf("address: got %v, want %v", b.Address, want)
	}
}

func TestAddressAt(t *testing.T) {
	tests := []struct {
		off      int64
		want     string // "" means none left
		wantNext int64
	}{
		{-5, "100.96.0.1", 2},
		{0, "100.96.0.1", 2},
		{1, "100.96.0.1", 2},
		{254, "100.96.0.254", 255},
		{255, "100.96.1.1", 258},
		{256, "100.96.1.1", 258},
		{overlaySize - 2, "100.111.255.254", overlaySize - 1},
		{overlaySize - 1, "", overlaySize},
		{overlaySize, "", overlaySize},
	}
	for _, tt := range tests {
		addr, next, ok := addressAt(tt.off)
		got := ""
		if ok {
			got = addr.String()
		}
		if got != tt.want || (ok && next != tt.wantNext) {
			t.Errorf("addressAt(%d): got %q, %d, want %q, %d", tt.off, got, next, tt.want, tt.wantNext)
		}
	}
}

func TestEnrollConcurrentSingleUse(t *testing.T) {
	s, _ := openTest(t)
	mustCreateToken(t, s, testToken("t1", "laptop", false))
	errs := enrollConcurrently(s, "hash-t1", 50)

	var ok, used int
	for i, err := range errs {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, ErrTokenUsed):
			used++
		default:
			t.Errorf("Enroll #%d: %v", i, err)
		}
	}
	if ok != 1 || used != 49 {
		t.Errorf("got %d enrolled and %d ErrTokenUsed, want 1 and 49", ok, used)
	}
	st := mustLoad(t, s)
	if len(st.Nodes) != 1 || st.Tokens[0].Uses != 1 || st.Version != 1 {
		t.Errorf("got %d nodes, %d uses, version %d; want 1, 1, 1", len(st.Nodes), st.Tokens[0].Uses, st.Version)
	}
}

// TestEnrollConcurrentTwoHandles races two stores on one file, as two
// processes would: BEGIN IMMEDIATE and the busy timeout must still let
// exactly one enrollment through.
func TestEnrollConcurrentTwoHandles(t *testing.T) {
	s1, path := openTest(t)
	s2, err := OpenSQLite(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	mustCreateToken(t, s1, testToken("t1", "laptop", false))

	const n = 20
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		s := s1
		if i%2 == 1 {
			s = s2
		}
		wg.Go(func() {
			<-start
			_, _, errs[i] = s.Enroll(context.Background(), params("hash-t1", i))
		})
	}
	close(start)
	wg.Wait()

	var ok int
	for i, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, ErrTokenUsed):
			t.Errorf("Enroll #%d: %v", i, err)
		}
	}
	if ok != 1 {
		t.Errorf("got %d enrolled, want 1", ok)
	}
	if got := len(mustLoad(t, s2).Nodes); got != 1 {
		t.Errorf("nodes: got %d, want 1", got)
	}
}

func TestEnrollConcurrentReusable(t *testing.T) {
	s, _ := openTest(t)
	mustCreateToken(t, s, testToken("t1", "srv", true))
	const n = 20
	for i, err := range enrollConcurrently(s, "hash-t1", n) {
		if err != nil {
			t.Errorf("Enroll #%d: %v", i, err)
		}
	}
	st := mustLoad(t, s)
	names := map[string]bool{}
	addrs := map[netip.Addr]bool{}
	for _, node := range st.Nodes {
		names[node.Name] = true
		addrs[node.Address] = true
	}
	for i := 1; i <= n; i++ {
		if name := fmt.Sprintf("srv-%d", i); !names[name] {
			t.Errorf("no node named %s", name)
		}
	}
	if len(st.Nodes) != n || len(names) != n || len(addrs) != n {
		t.Errorf("got %d nodes, %d names, %d addresses; want %d of each", len(st.Nodes), len(names), len(addrs), n)
	}
	if st.Tokens[0].Uses != n || st.Version != n {
		t.Errorf("got %d uses, version %d; want %d, %d", st.Tokens[0].Uses, st.Version, n, n)
	}
}

// enrollConcurrently enrolls n nodes at once with one token and returns
// each call's error.
func enrollConcurrently(s *SQLite, hash string, n int) []error {
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			_, _, errs[i] = s.Enroll(context.Background(), params(hash, i))
		})
	}
	close(start)
	wg.Wait()
	return errs
}
