package store

import (
	"context"
	"errors"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/warrennet/warren/overlay/wire"
)

func TestUsers(t *testing.T) {
	s, _ := openTest(t)
	alice := testToken("t1", "alice-laptop", true)
	alice.User = "alice@example.com"
	mustCreateToken(t, s, alice)
	mustCreateToken(t, s, testToken("t2", "kiosk", false))

	n1 := mustEnroll(t, s, params("hash-t1", 1))
	n2 := mustEnroll(t, s, params("hash-t1", 2))
	n3 := mustEnroll(t, s, params("hash-t2", 3))
	for _, tt := range []struct {
		node Node
		want string
	}{{n1, "alice@example.com"}, {n2, "alice@example.com"}, {n3, ""}} {
		if tt.node.User != tt.want {
			t.Errorf("Enroll(%s): user %q, want %q", tt.node.Name, tt.node.User, tt.want)
		}
	}

	st := mustLoad(t, s)
	if got, want := st.Tokens[0].User, "alice@example.com"; got != want {
		t.Errorf("loaded token user: got %q, want %q", got, want)
	}
	got := map[string]string{}
	for _, n := range st.Nodes {
		got[n.Name] = n.User
	}
	want := map[string]string{"alice-laptop-1": "alice@example.com", "alice-laptop-2": "alice@example.com", "kiosk": ""}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("loaded node users (-want +got):\n%s", diff)
	}
}

func TestRouteOptions(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	r := wire.Route{Prefix: netip.MustParsePrefix("10.0.0.0/8"), Connector: "a", CreatedAt: t0}
	for _, step := range []struct {
		name        string
		proxy, host bool
	}{
		{"add with proxy", true, false},
		{"replace without", false, false},
		{"replace with host", false, true},
		{"replace with both", true, true},
		{"replace with proxy", true, false},
	} {
		r.ProxyProtocol, r.AllowConnectorHost = step.proxy, step.host
		if _, err := s.AddRoute(ctx, r); err != nil {
			t.Fatalf("%s: AddRoute: %v", step.name, err)
		}
		if diff := cmp.Diff([]wire.Route{r}, mustLoad(t, s).Routes, cmpOpts); diff != "" {
			t.Errorf("%s: routes (-want +got):\n%s", step.name, diff)
		}
	}
}

// TestMigration3KeepsRoutes: routes stored before migration 3 load with
// the connector host's addresses not allowed.
func TestMigration3KeepsRoutes(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "warren.db")
	s, err := openSQLite(ctx, path, migrations[:2])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.write.ExecContext(ctx, `INSERT INTO routes (prefix, connector, comment, created_at, proxy_protocol) VALUES ('10.0.0.0/8', 'a', '', ?, 1)`, formatTime(t0)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = openSQLite(ctx, path, migrations)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	want := []wire.Route{{Prefix: netip.MustParsePrefix("10.0.0.0/8"), Connector: "a", CreatedAt: t0, ProxyProtocol: true}}
	if diff := cmp.Diff(want, mustLoad(t, s).Routes, cmpOpts); diff != "" {
		t.Errorf("routes after migration 3 (-want +got):\n%s", diff)
	}
}

func TestHosts(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	host := func(name, addr string) wire.Host {
		return wire.Host{Name: name, Address: netip.MustParseAddr(addr), Comment: "c " + name, CreatedAt: t0}
	}
	steps := []struct {
		name    string
		do      func() (uint64, error)
		wantErr error
	}{
		{"add web", func() (uint64, error) { return s.AddHost(ctx, host("web", "192.168.0.10")) }, nil},
		{"add db", func() (uint64, error) { return s.AddHost(ctx, host("db", "2001:db8::5")) }, nil},
		{"add web again", func() (uint64, error) { return s.AddHost(ctx, host("web", "192.168.0.11")) }, ErrExists},
		{"add invalid", func() (uint64, error) { return s.AddHost(ctx, wire.Host{Name: "x", CreatedAt: t0}) }, nil /* any error */},
		{"add zz", func() (uint64, error) { return s.AddHost(ctx, host("zz", "10.0.0.1")) }, nil},
		{"remove zz", func() (uint64, error) { return s.RemoveHost(ctx, "zz") }, nil},
		{"remove zz again", func() (uint64, error) { return s.RemoveHost(ctx, "zz") }, ErrNotFound},
	}
	var want uint64
	for _, st := range steps {
		v, err := st.do()
		switch {
		case st.name == "add invalid":
			if err == nil {
				t.Errorf("%s: succeeded", st.name)
			}
		case !errors.Is(err, st.wantErr):
			t.Errorf("%s: got %v, want %v", st.name, err, st.wantErr)
		case err == nil:
			want++
			if v != want {
				t.Errorf("%s: version %d, want %d", st.name, v, want)
			}
		}
		if got := mustLoad(t, s).Version; got != want {
			t.Errorf("after %s: version %d, want %d", st.name, got, want)
		}
	}
	wantHosts := []wire.Host{host("db", "2001:db8::5"), host("web", "192.168.0.10")}
	if diff := cmp.Diff(wantHosts, mustLoad(t, s).Hosts, cmpOpts); diff != "" {
		t.Errorf("hosts (-want +got):\n%s", diff)
	}
}

func TestSetPolicy(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	doc := "// who reaches what\n{\"rules\": [\n  {\"from\": [\"*\"], \"to\": [\"10.0.0.0/8:22\"]}, // ssh\n],}\n"
	numeric := "42"
	steps := []struct {
		name string
		text *string
		want *StoredPolicy
	}{
		{"set", &doc, &StoredPolicy{Text: doc, SetAt: t0}},
		{"set a text that looks like a number", &numeric, &StoredPolicy{Text: numeric, SetAt: t0.Add(1)}},
		{"clear", nil, nil},
		{"clear again", nil, nil},
		{"set after clearing", &doc, &StoredPolicy{Text: doc, SetAt: t0.Add(4)}},
	}
	for i, st := range steps {
		now := t0.Add(time.Duration(i)).In(elsewhere)
		v, err := s.SetPolicy(ctx, st.text, now)
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		loaded := mustLoad(t, s)
		if want := uint64(i + 1); v != want || loaded.Version != want {
			t.Errorf("%s: version %d (returned), %d (loaded), want %d", st.name, v, loaded.Version, want)
		}
		if diff := cmp.Diff(st.want, loaded.Policy); diff != "" {
			t.Errorf("%s: policy (-want +got):\n%s", st.name, diff)
		}
		if loaded.Policy != nil && loaded.Policy.SetAt.Location() != t0.Location() {
			t.Errorf("%s: SetAt location %v, want UTC", st.name, loaded.Policy.SetAt.Location())
		}
	}
}
