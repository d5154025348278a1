package cli

import (
	"bytes"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/warrennet/warren/overlay/ctl"
	"github.com/warrennet/warren/overlay/wire"
)

// TestStatusText pins what a person sees in `warren status`.
func TestStatusText(t *testing.T) {
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	node := wire.Node{Name: "laptop", Role: wire.RoleClient, Address: netip.MustParseAddr("100.96.0.2")}
	alice := node
	alice.User = "alice@example.com"
	tests := []struct {
		golden string
		st     ctl.Status
	}{
		{"status-not-enrolled.txt", ctl.Status{State: ctl.StateDown}},
		{"status-down.txt", ctl.Status{State: ctl.StateDown, Enrolled: true, Node: node}},
		{"status-up.txt", ctl.Status{
			State: ctl.StateUp, Enrolled: true, Node: node, Interface: "warren0", NetMapVersion: 12,
			Coordinator: ctl.Coordinator{URL: "https://198.51.100.10:8443", Connected: true},
			Relay:       ctl.Relay{Endpoint: "198.51.100.10:8443", Connected: true, Observed: "198.51.100.30:40123"},
			Peers: []ctl.PeerStatus{
				{Name: "office", Role: wire.RoleConnector, Address: netip.MustParseAddr("100.96.0.1"), Online: true, Path: "relay", LastHandshake: now.Add(-42 * time.Second), RxBytes: 70 << 20, TxBytes: 3 << 10},
				{Name: "aws", Role: wire.RoleConnector, Address: netip.MustParseAddr("100.96.0.3"), Path: "none"},
			},
			Routes: []ctl.RouteStatus{
				{Prefix: netip.MustParsePrefix("192.168.0.0/24"), Connector: "office", Live: true, Reason: "via office (relay)"},
				{Prefix: netip.MustParsePrefix("10.20.0.0/16"), Connector: "aws", Reason: "connector aws is offline"},
			},
			Warnings: []string{"admin exclude 192.168.0.128/25 shadows route 192.168.0.0/24 via office"},
		}},
		{"status-down-user.txt", ctl.Status{State: ctl.StateDown, Enrolled: true, Node: alice}},
		{"status-policy.txt", ctl.Status{
			State: ctl.StateUp, Enrolled: true, Node: alice, Interface: "warren0", NetMapVersion: 14,
			Coordinator: ctl.Coordinator{URL: "https://198.51.100.10:8443", Connected: true},
			Relay:       ctl.Relay{Endpoint: "198.51.100.10:8443", Connected: true},
			Peers: []ctl.PeerStatus{
				{Name: "office", Role: wire.RoleConnector, Address: netip.MustParseAddr("100.96.0.1"), Online: true, Path: "relay", LastHandshake: now.Add(-3 * time.Second)},
			},
			Routes: []ctl.RouteStatus{
				{Prefix: netip.MustParsePrefix("192.168.0.0/24"), Connector: "office", Live: true, Reason: "via office (relay)"},
			},
			Policy:  ctl.PolicyStatus{Mode: wire.PolicyEnforced, Grants: 3},
			Inbound: ctl.Inbound{Flows: 12, Dropped: 1},
			Denials: []ctl.Denial{
				{At: now.Add(-30 * time.Second), Dest: netip.MustParseAddrPort("192.168.0.10:8080"), Proto: wire.ProtoTCP, Connector: "office",
					Reason: "denied by policy: no rule lets alice@example.com reach 192.168.0.10:8080/tcp", Count: 3},
				{At: now.Add(-10 * time.Minute), Dest: netip.MustParseAddrPort("192.168.0.20:0"), Proto: wire.ProtoICMP, Connector: "office",
					Reason: "denied by policy: no rule lets alice@example.com reach 192.168.0.20/icmp", Count: 1},
			},
		}},
		{"status-allow-all.txt", ctl.Status{
			State: ctl.StateUp, Enrolled: true, Node: alice, Interface: "warren0", NetMapVersion: 3,
			Coordinator: ctl.Coordinator{URL: "https://198.51.100.10:8443", Connected: true},
			Routes:      []ctl.RouteStatus{},
			Policy:      ctl.PolicyStatus{Mode: wire.PolicyAllowAll},
			Inbound:     ctl.Inbound{Flows: 1, Dropped: 40},
		}},
		{"status-ssh.txt", ctl.Status{
			State: ctl.StateUp, Enrolled: true, Node: alice, Interface: "warren0", NetMapVersion: 9,
			Coordinator: ctl.Coordinator{URL: "https://198.51.100.10:8443", Connected: true},
			Routes:      []ctl.RouteStatus{},
			Policy:      ctl.PolicyStatus{Mode: wire.PolicyEnforced, Grants: 2},
			SSH: ctl.SSHStatus{As: []string{"alice", "deploy"}, Certs: []ctl.SSHCertStatus{
				{User: "alice", UID: 1000, Path: "/home/alice/.ssh/id_ed25519-cert.pub", Principals: []string{"alice", "deploy"}, ValidBefore: now.Add(50 * time.Minute), RenewAt: now.Add(30 * time.Minute)},
				{User: "bob", UID: 1001, Path: "/home/bob/.ssh/id_ecdsa-cert.pub", Principals: []string{"bob"}, ValidBefore: now.Add(-2 * time.Minute), RenewAt: now.Add(40 * time.Second),
					Error: "asking the coordinator for a certificate: no ssh rule lets alice@example.com log in as anybody"},
			}},
		}},
		{"status-down-ssh.txt", ctl.Status{State: ctl.StateDown, Enrolled: true, Node: alice, SSH: ctl.SSHStatus{Certs: []ctl.SSHCertStatus{
			{User: "alice", UID: 1000, Path: "/home/alice/.ssh/id_ed25519-cert.pub", Principals: []string{"alice"}, ValidBefore: now.Add(3 * time.Hour), RenewAt: now.Add(-time.Hour)},
		}}}},
		{"status-userspace.txt", ctl.Status{
			State: ctl.StateUp, Mode: ctl.ModeUserspace, Enrolled: true, Node: alice, NetMapVersion: 5,
			Proxies:     ctl.Proxies{SOCKS5: "127.0.0.1:1080", HTTP: "127.0.0.1:1081"},
			Coordinator: ctl.Coordinator{URL: "https://198.51.100.10:8443", Connected: true},
			Relay:       ctl.Relay{Endpoint: "198.51.100.10:8443", Connected: true},
			Peers: []ctl.PeerStatus{
				{Name: "office", Role: wire.RoleConnector, Address: netip.MustParseAddr("100.96.0.1"), Online: true, Path: "relay", LastHandshake: now.Add(-3 * time.Second)},
			},
			Routes: []ctl.RouteStatus{
				{Prefix: netip.MustParsePrefix("192.168.0.0/24"), Connector: "office", Live: true, Reason: "via office (relay)"},
			},
			Policy: ctl.PolicyStatus{Mode: wire.PolicyAllowAll},
		}},
		{"status-userspace-no-proxies.txt", ctl.Status{
			State: ctl.StateStarting, Mode: ctl.ModeUserspace, Enrolled: true, Node: node,
			Coordinator: ctl.Coordinator{URL: "https://198.51.100.10:8443"},
			Routes:      []ctl.RouteStatus{},
		}},
		{"status-down-userspace.txt", ctl.Status{State: ctl.StateDown, Mode: ctl.ModeUserspace, Enrolled: true, Node: node}},
		{"status-coordinator-lost.txt", ctl.Status{
			State: ctl.StateUp, Enrolled: true, Node: node, Interface: "warren0", NetMapVersion: 12,
			Coordinator: ctl.Coordinator{URL: "https://198.51.100.10:8443", Error: "cannot reach the coordinator at https://198.51.100.10:8443: connection refused"},
			Relay:       ctl.Relay{Endpoint: "198.51.100.10:8443", Refusal: "credential expired (3s ago)"},
			Routes:      []ctl.RouteStatus{},
		}},
	}
	for _, tt := range tests {
		var buf bytes.Buffer
		if err := printStatus(&buf, &tt.st, now); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join("testdata", tt.golden)
		if *update {
			os.WriteFile(path, buf.Bytes(), 0o644)
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run with -update)", err)
		}
		if diff := cmp.Diff(string(want), buf.String()); diff != "" {
			t.Errorf("%s (-golden +got):\n%s", tt.golden, diff)
		}
	}
}
