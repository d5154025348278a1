package store

import (
	"context"
	"errors"
	"net/netip"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/warrennet/warren/overlay/wire"
)

func TestDNS(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	dns := func(domain string, servers ...string) wire.DNSDomain {
		d := wire.DNSDomain{Domain: domain, UpdatedAt: t0}
		for _, a := range servers {
			d.Servers = append(d.Servers, netip.MustParseAddr(a))
		}
		return d
	}
	steps := []struct {
		name    string
		do      func() (uint64, error)
		wantErr error
		anyErr  bool
	}{
		{name: "set corp", do: func() (uint64, error) { return s.SetDNS(ctx, dns("corp.example", "10.1.0.53")) }},
		{name: "set lab", do: func() (uint64, error) { return s.SetDNS(ctx, dns("lab.example", "10.2.0.53", "fd00::53")) }},
		{name: "replace corp", do: func() (uint64, error) { return s.SetDNS(ctx, dns("corp.example", "10.1.0.54", "10.1.0.53")) }},
		{name: "set no servers", do: func() (uint64, error) { return s.SetDNS(ctx, dns("x.example")) }, anyErr: true},
		{name: "set invalid server", do: func() (uint64, error) {
			return s.SetDNS(ctx, wire.DNSDomain{Domain: "x.example", Servers: []netip.Addr{{}}, UpdatedAt: t0})
		}, anyErr: true},
		{name: "set zz", do: func() (uint64, error) { return s.SetDNS(ctx, dns("zz.example", "10.3.0.53")) }},
		{name: "remove zz", do: func() (uint64, error) { return s.RemoveDNS(ctx, "zz.example") }},
		{name: "remove zz again", do: func() (uint64, error) { return s.RemoveDNS(ctx, "zz.example") }, wantErr: ErrNotFound},
	}
	var want uint64
	for _, st := range steps {
		v, err := st.do()
		switch {
		case st.anyErr:
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
	wantDNS := []wire.DNSDomain{dns("corp.example", "10.1.0.54", "10.1.0.53"), dns("lab.example", "10.2.0.53", "fd00::53")}
	if diff := cmp.Diff(wantDNS, mustLoad(t, s).DNS, cmpOpts); diff != "" {
		t.Errorf("dns (-want +got):\n%s", diff)
	}
}

// TestMigration6KeepsState opens a database at migration 5 with a route
// and a host, applies step 6 and finds both, and no dns entries.
func TestMigration6KeepsState(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "warren.db")
	s, err := openSQLite(ctx, path, migrations[:5])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddHost(ctx, wire.Host{Name: "web", Address: netip.MustParseAddr("10.1.0.5"), CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = openSQLite(ctx, path, migrations)
	if err != nil {
		t.Fatalf("migrating to 6: %v", err)
	}
	defer s.Close()
	st := mustLoad(t, s)
	if len(st.Hosts) != 1 || len(st.DNS) != 0 || st.Version != 1 {
		t.Errorf("after migration 6: hosts %v, dns %v, version %d; want 1 host, no dns, version 1", st.Hosts, st.DNS, st.Version)
	}
}
