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

// TestAdminPolicyAndHosts runs the access-policy and host calls against a
// real coordinator.
func TestAdminPolicyAndHosts(t *testing.T) {
	s := coordtest.Start(t, coordtest.Options{})
	a := newAdmin(t, s.Admin)
	ctx := context.Background()

	tok, err := a.CreateToken(ctx, wire.CreateTokenRequest{Role: wire.RoleClient, Name: "alice", User: "alice@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if tok.Info.User != "alice@example.com" {
		t.Errorf("CreateToken user = %q", tok.Info.User)
	}
	office := s.Enroll(t, wire.RoleConnector, "office", mustKey(t))
	r, err := a.AddRoute(ctx, wire.AddRouteRequest{Prefix: "192.168.0.0/24", Connector: office.Node.Name, ProxyProtocol: true})
	if err != nil {
		t.Fatal(err)
	}
	if !r.ProxyProtocol {
		t.Errorf("AddRoute did not pass PROXY v2: %+v", r)
	}

	h, err := a.AddHost(ctx, wire.AddHostRequest{Name: "web", Address: "192.168.0.10", Comment: "intranet"})
	if err != nil {
		t.Fatal(err)
	}
	hosts, err := a.Hosts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]wire.Host{*h}, hosts, cmpNet); diff != "" || h.Address != netip.MustParseAddr("192.168.0.10") {
		t.Errorf("Hosts (-added +listed):\n%s", diff)
	}

	doc, err := a.Policy(ctx)
	if err != nil || doc.Mode != wire.PolicyAllowAll {
		t.Fatalf("Policy() = %+v, %v; want allow-all", doc, err)
	}
	text := `{"rules": [{"from": ["user:alice@example.com"], "to": ["web:22"]}]}`
	resp, err := a.SetPolicy(ctx, wire.SetPolicyRequest{Document: text, DryRun: true})
	if err != nil || resp.Applied || len(resp.Changes) != 1 {
		t.Errorf("SetPolicy dry run = %+v, %v", resp, err)
	}
	if resp, err = a.SetPolicy(ctx, wire.SetPolicyRequest{Document: text}); err != nil || !resp.Applied {
		t.Fatalf("SetPolicy = %+v, %v", resp, err)
	}
	if doc, err = a.Policy(ctx); err != nil || doc.Document != text || doc.Mode != wire.PolicyEnforced {
		t.Errorf("Policy() = %+v, %v; want the document", doc, err)
	}
	_, err = a.SetPolicy(ctx, wire.SetPolicyRequest{Document: `{"rules": []}`})
	var we *wire.Error
	if !errors.As(err, &we) || we.Code != wire.CodeInvalid {
		t.Errorf("SetPolicy of an empty rule list = %v, want invalid", err)
	}

	for _, tt := range []struct {
		dest  string
		allow bool
	}{{"192.168.0.10:22", true}, {"192.168.0.10:80", false}} {
		d, err := a.PolicyWhy(ctx, "alice@example.com", tt.dest)
		if err != nil || d.Allow != tt.allow {
			t.Errorf("PolicyWhy(%s) = %+v, %v; want allow %v", tt.dest, d, err, tt.allow)
		}
	}
	if _, err := a.PolicyWhy(ctx, "alice@example.com", "nowhere:22"); !errors.As(err, &we) || we.Code != wire.CodeInvalid {
		t.Errorf("PolicyWhy to an unknown host = %v, want invalid", err)
	}
	if err := a.RemoveHost(ctx, "web"); !errors.As(err, &we) || we.Code != wire.CodeConflict {
		t.Errorf("RemoveHost named by the policy = %v, want conflict", err)
	}
	if resp, err = a.ResetPolicy(ctx); err != nil || resp.Mode != wire.PolicyAllowAll {
		t.Errorf("ResetPolicy = %+v, %v", resp, err)
	}
	if err := a.RemoveHost(ctx, "web"); err != nil {
		t.Errorf("RemoveHost: %v", err)
	}
	if hosts, err = a.Hosts(ctx); err != nil || len(hosts) != 0 {
		t.Errorf("Hosts after removal = %v, %v", hosts, err)
	}
}
