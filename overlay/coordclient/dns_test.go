package coordclient_test

import (
	"context"
	"errors"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/warrennet/warren/overlay/wire"
	"github.com/warrennet/warren/test/coordtest"
)

// TestAdminDNS runs the split-DNS calls against a real coordinator.
func TestAdminDNS(t *testing.T) {
	s := coordtest.Start(t, coordtest.Options{})
	a := newAdmin(t, s.Admin)
	ctx := context.Background()
	office := s.Enroll(t, wire.RoleConnector, "office", mustKey(t))
	if _, err := a.AddRoute(ctx, wire.AddRouteRequest{Prefix: "192.168.0.0/24", Connector: office.Node.Name}); err != nil {
		t.Fatal(err)
	}

	_, err := a.SetDNS(ctx, wire.SetDNSRequest{Domain: "corp.example", Servers: []string{"10.9.0.53"}})
	var we *wire.Error
	if !errors.As(err, &we) || we.Code != wire.CodeInvalid {
		t.Errorf("SetDNS with an unrouted server = %v; want %s", err, wire.CodeInvalid)
	}
	d, err := a.SetDNS(ctx, wire.SetDNSRequest{Domain: "Corp.Example.", Servers: []string{"192.168.0.53"}})
	if err != nil {
		t.Fatal(err)
	}
	if d.Domain != "corp.example" || len(d.Servers) != 1 || d.Servers[0] != netip.MustParseAddr("192.168.0.53") {
		t.Errorf("SetDNS = %+v", d)
	}
	ds, err := a.DNS(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]wire.DNSDomain{*d}, ds, cmpNet); diff != "" {
		t.Errorf("DNS (-set +listed):\n%s", diff)
	}
	if err := a.RemoveDNS(ctx, "corp.example"); err != nil {
		t.Fatal(err)
	}
	err = a.RemoveDNS(ctx, "corp.example")
	if !errors.As(err, &we) || we.Code != wire.CodeNotFound {
		t.Errorf("RemoveDNS again = %v; want %s", err, wire.CodeNotFound)
	}
}
