package coord

import (
	"context"
	"errors"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/warrennet/warren/overlay/wire"
)

func TestHosts(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	for _, req := range []wire.AddHostRequest{
		{Name: "web", Address: "192.168.0.10", Comment: "intranet"},
		{Name: "db", Address: " 2001:db8::5 "},
		{Name: "mapped", Address: "::ffff:10.0.0.1"},
	} {
		if _, err := h.c.AddHost(ctx, req); err != nil {
			t.Fatalf("AddHost(%+v): %v", req, err)
		}
	}
	at := h.clock.Now()
	want := []wire.Host{
		{Name: "db", Address: netip.MustParseAddr("2001:db8::5"), CreatedAt: at},
		{Name: "mapped", Address: netip.MustParseAddr("10.0.0.1"), CreatedAt: at},
		{Name: "web", Address: netip.MustParseAddr("192.168.0.10"), Comment: "intranet", CreatedAt: at},
	}
	if diff := cmp.Diff(want, h.c.Hosts(), netipEqual); diff != "" {
		t.Errorf("Hosts (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, h.c.Export().Hosts, netipEqual); diff != "" {
		t.Errorf("Export().Hosts (-want +got):\n%s", diff)
	}

	before := h.c.Export()
	for _, tt := range []struct {
		req        wire.AddHostRequest
		code, want string
	}{
		{wire.AddHostRequest{Name: "web", Address: "192.168.0.11"}, wire.CodeConflict,
			`a host named "web" already exists (192.168.0.10); remove it first with: warren hosts rm web`},
		{wire.AddHostRequest{Name: "Web", Address: "192.168.0.11"}, wire.CodeInvalid,
			`host name "Web" may hold only lowercase letters, digits and inner hyphens`},
		{wire.AddHostRequest{Name: "", Address: "192.168.0.11"}, wire.CodeInvalid, `host name is empty`},
		{wire.AddHostRequest{Name: "x", Address: "192.168.0.0/24"}, wire.CodeInvalid,
			`"192.168.0.0/24" is not an IP address (for example 192.168.0.10)`},
		{wire.AddHostRequest{Name: "x", Address: "fe80::1%eth0"}, wire.CodeInvalid,
			`"fe80::1%eth0" is not an IP address (for example 192.168.0.10)`},
		{wire.AddHostRequest{Name: "x", Address: "0.0.0.0"}, wire.CodeInvalid, `0.0.0.0 is the unspecified address, not a host`},
		{wire.AddHostRequest{Name: "x", Address: "10.0.0.1", Comment: string(make([]byte, 201))}, wire.CodeInvalid,
			`comment is longer than 200 characters`},
	} {
		_, err := h.c.AddHost(ctx, tt.req)
		var we *wire.Error
		if !errors.As(err, &we) || we.Code != tt.code || we.Message != tt.want {
			t.Errorf("AddHost(%q, %q) = %v; want %s: %s", tt.req.Name, tt.req.Address, err, tt.code, tt.want)
		}
	}
	if diff := cmp.Diff(before, h.c.Export(), netipEqual); diff != "" {
		t.Errorf("refused adds changed state (-before +after):\n%s", diff)
	}

	if err := h.c.RemoveHost(ctx, "mapped"); err != nil {
		t.Fatal(err)
	}
	if h.c.Version() <= before.Version {
		t.Errorf("version %d did not grow past %d", h.c.Version(), before.Version)
	}
	err := h.c.RemoveHost(ctx, "mapped")
	var we *wire.Error
	if !errors.As(err, &we) || we.Code != wire.CodeNotFound || we.Message != `no host named "mapped" (see: warren hosts ls)` {
		t.Errorf("RemoveHost(mapped) again = %v", err)
	}

	// A coordinator restarted on the same store knows the hosts.
	c2, err := New(ctx, Config{Store: h.store, URL: "https://198.51.100.10:8443"})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]wire.Host{want[0], want[2]}, c2.Hosts(), netipEqual); diff != "" {
		t.Errorf("Hosts after restart (-want +got):\n%s", diff)
	}
}
