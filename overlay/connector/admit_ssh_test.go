package connector

import (
	"net/netip"
	"testing"

	"github.com/warrennet/warren/netstack"
	"github.com/warrennet/warren/overlay/wire"
)

// TestAdmitNamesRules: a decision names the allowing rule as the policy
// does, "rule N" or "ssh rule N", with its text when the netmap has it.
func TestAdmitNamesRules(t *testing.T) {
	src := netip.MustParseAddr("100.96.0.9")
	ssh1 := wire.SSHRuleBase + 1
	nm := netMap([]string{"192.0.2.0/24"}, true, wire.Peer{
		Node: wire.Node{Name: "laptop", Role: wire.RoleClient, User: "alice@example.com", Address: src},
		Grants: []wire.Grant{
			grant("192.0.2.0/24", "443", wire.ProtoTCP, 2),
			grant("192.0.2.10/32", "22", wire.ProtoTCP, ssh1),
		},
	})
	nm.Policy.Rules = []wire.PolicyRule{{Index: ssh1, Text: "group:eng → 192.0.2.10:22/tcp as deploy"}}
	a, err := newAdmission(nm, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		dst    string
		rule   int
		reason string
	}{
		{"192.0.2.10:22", ssh1, "allowed by ssh rule 1: group:eng → 192.0.2.10:22/tcp as deploy"},
		{"192.0.2.10:443", 2, "allowed by rule 2"},
	} {
		d := admit(a, netstack.Flow{Src: netip.AddrPortFrom(src, 40000), Dst: netip.MustParseAddrPort(tt.dst), Proto: netstack.ProtoTCP})
		if !d.allow || d.rule != tt.rule || d.reason != tt.reason {
			t.Errorf("admit(%s) = %v, rule %d, %q; want rule %d, %q", tt.dst, d.allow, d.rule, d.reason, tt.rule, tt.reason)
		}
	}
}
