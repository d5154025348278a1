package client

import (
	"net/netip"
	"testing"

	"github.com/warrennet/warren/overlay/wire"
)

// TestDecideWords pins the words of decisions the engine test does not
// reach: IPv6, ICMP grants, ports of ICMP ignored, a node without a user.
func TestDecideWords(t *testing.T) {
	pol := wire.NetMapPolicy{Enforced: true, Grants: []wire.Grant{
		{Prefix: netip.MustParsePrefix("2001:db8::/64"), Ports: wire.PortRange{First: 8000, Last: 8999}, Proto: wire.ProtoUDP, Rule: 2},
		{Prefix: netip.MustParsePrefix("10.0.0.0/8"), Ports: wire.AllPorts, Proto: wire.ProtoICMP, Rule: 5},
		{Prefix: netip.MustParsePrefix("10.9.0.0/16"), Ports: wire.PortRange{First: 22, Last: 22}, Proto: wire.ProtoTCP, Rule: wire.SSHRuleBase + 2},
	}}
	alice := wire.Node{Name: "laptop", User: "alice@example.com"}
	nobody := wire.Node{Name: "kiosk"}
	v6 := netip.MustParseAddr("2001:db8::10")
	tests := []struct {
		self  wire.Node
		dst   netip.Addr
		port  uint16
		proto wire.Proto
		allow bool
		rule  int
		words string
	}{
		{alice, v6, 8080, wire.ProtoUDP, true, 2, "allowed by rule 2"},
		{alice, v6, 8080, wire.ProtoTCP, false, 0, "denied by policy: no rule lets alice@example.com reach [2001:db8::10]:8080/tcp"},
		{nobody, v6, 22, wire.ProtoTCP, false, 0, "denied by policy: no rule lets kiosk reach [2001:db8::10]:22/tcp"},
		{alice, netip.MustParseAddr("10.1.2.3"), 99, wire.ProtoICMP, true, 5, "allowed by rule 5"},
		{alice, netip.MustParseAddr("::ffff:10.1.2.3"), 0, wire.ProtoICMP, true, 5, "allowed by rule 5"},
		{alice, netip.MustParseAddr("10.9.2.3"), 22, wire.ProtoTCP, true, wire.SSHRuleBase + 2, "allowed by ssh rule 2"},
		{alice, netip.MustParseAddr("10.1.2.3"), 99, wire.ProtoUDP, false, 0, "denied by policy: no rule lets alice@example.com reach 10.1.2.3:99/udp"},
	}
	for _, tt := range tests {
		d := decide(pol, tt.self, tt.dst, tt.port, tt.proto)
		if d.Allow != tt.allow || d.Rule != tt.rule || d.Reason != tt.words {
			t.Errorf("decide(%s, %v:%d/%s) = %v, rule %d, %q; want %v, rule %d, %q", tt.self.Name, tt.dst, tt.port, tt.proto, d.Allow, d.Rule, d.Reason, tt.allow, tt.rule, tt.words)
		}
	}
	if got, want := reachable(pol, alice, netip.MustParseAddr("10.9.9.9")), "the access policy lets alice@example.com reach 10.9.9.9 only on: icmp (rule 5), 22/tcp (ssh rule 2)"; got != want {
		t.Errorf("reachable = %q, want %q", got, want)
	}
	if got, want := reachable(pol, alice, netip.MustParseAddr("192.168.1.1")), "denied by policy: no rule lets alice@example.com reach 192.168.1.1 on any port"; got != want {
		t.Errorf("reachable = %q, want %q", got, want)
	}
}
