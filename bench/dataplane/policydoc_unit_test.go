package dataplane

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/warrennet/warren/overlay/wire"
	"github.com/warrennet/warren/policy"
	"github.com/warrennet/warren/test/netlab"
)

// The generated document is checked against the real compiler and
// Matcher (pure packages; the benchmark itself loads the document only
// through `warren policy set`), so a document `policy set` would refuse,
// or one that lets the bench's flows through some other rule, fails here
// without root.

func benchSpec() policySpec {
	return policySpec{
		Rules:  policyRules,
		User:   benchUser,
		Target: netip.MustParseAddr(netlab.LANHostIP),
		Ports:  []uint16{iperfPort, mustPort(echoPort)},
		Probe:  policyProbePort,
		Routed: policyRouted(siteLAN),
	}
}

// compileBench generates and compiles a document as `policy set` does.
func compileBench(t *testing.T, spec policySpec) (benchPolicy, *policy.Compiled, []string) {
	t.Helper()
	bp, err := policyDocument(spec)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := policy.Parse(bp.Text)
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	if got, want := len(doc.Rules), spec.Rules; got != want {
		t.Fatalf("%d rules, want %d", got, want)
	}
	hosts := map[string]netip.Addr{}
	for _, h := range bp.Hosts {
		if err := wire.ValidateName(h.Name); err != nil {
			t.Errorf("host: %v", err)
		}
		hosts[h.Name] = h.Addr
	}
	// Strict: the only user a token carries is the laptop's; the others
	// are known because groups list them.
	c, warnings, err := policy.Compile(doc, policy.Env{Users: []string{spec.User}, Hosts: hosts, Routes: spec.Routed}, policy.Options{Strict: true})
	if err != nil {
		t.Fatalf("compile (policy set would refuse it): %v", err)
	}
	return bp, c, warnings
}

func TestPolicyDocument(t *testing.T) {
	spec := benchSpec()
	bp, c, warnings := compileBench(t, spec)
	if len(warnings) > 0 {
		t.Errorf("policy set would warn: %q", warnings)
	}
	if bp.Rule < spec.Rules-5 || bp.Rule > spec.Rules {
		t.Errorf("the allowing rule is rule %d of %d, want one near the end", bp.Rule, spec.Rules)
	}
	if bp.Groups < 20 || bp.Users < 100 || len(bp.Hosts) < 10 {
		t.Errorf("%d groups, %d users, %d hosts: want a document over many of each", bp.Groups, bp.Users, len(bp.Hosts))
	}

	// The bench's flows pass by that one rule, and no other: the same
	// answer from Decide, from the connector's Matcher over the grants
	// cut to the served prefixes, and with the rule itself removed.
	grants := c.GrantsWithin(spec.User, spec.Routed)
	m := policy.NewMatcher(grants)
	for _, p := range spec.Ports {
		if d := c.Decide(spec.User, spec.Target, p, wire.ProtoTCP); !d.Allow || d.Rule != bp.Rule {
			t.Errorf("Decide(%s, %v:%d) = %v by rule %d, want allowed by rule %d: %s", spec.User, spec.Target, p, d.Allow, d.Rule, bp.Rule, d.Reason)
		}
		if rule, ok := m.Allow(spec.Target, p, wire.ProtoTCP); !ok || rule != bp.Rule {
			t.Errorf("Matcher.Allow(%v:%d) = rule %d, %v; want rule %d", spec.Target, p, rule, ok, bp.Rule)
		}
		if d := c.Decide("u001@"+policyDomain, spec.Target, p, wire.ProtoTCP); d.Allow {
			t.Errorf("another user reaches %v:%d: %s", spec.Target, p, d.Reason)
		}
	}
	if rule, ok := m.Allow(spec.Target, spec.Probe, wire.ProtoTCP); ok {
		t.Errorf("the probe port %d/tcp is allowed, by rule %d", spec.Probe, rule)
	}
	// waitDirect pings lanhost: ICMP passes for everyone.
	if d := c.Decide("", spec.Target, 0, wire.ProtoICMP); !d.Allow {
		t.Errorf("ping to %v: %s", spec.Target, d.Reason)
	}

	// The Matcher's work: the laptop's grants on the prefixes holding
	// Target that come before the allowing rule, which Allow walks.
	before := 0
	for _, g := range grants {
		if g.Prefix.Contains(spec.Target) && g.Rule < bp.Rule {
			before++
		}
	}
	if before < 30 {
		t.Errorf("%d of the laptop's %d grants hold %v before rule %d, want at least 30", before, len(grants), spec.Target, bp.Rule)
	}
	t.Logf("%d bytes, %d rules, %d groups, %d users, %d hosts; the laptop has %d grants at the connector, %d of them on %v before rule %d",
		len(bp.Text), spec.Rules, bp.Groups, bp.Users, len(bp.Hosts), len(grants), before, spec.Target, bp.Rule)

	// The rules vary: sources, destination kinds, ports and protocols.
	doc, _ := policy.Parse(bp.Text)
	seen := map[string]map[string]bool{"from": {}, "to": {}, "ports": {}, "proto": {}}
	for _, r := range doc.Rules {
		for _, f := range r.From {
			seen["from"][f] = true
		}
		for _, to := range r.To {
			i := strings.LastIndex(to, ":")
			seen["to"][to[:i]] = true
			seen["ports"][to[i+1:]] = true
		}
		seen["proto"][r.Proto] = true
	}
	for kind, min := range map[string]int{"from": 40, "to": 40, "ports": 20, "proto": 5} {
		if len(seen[kind]) < min {
			t.Errorf("%d distinct %s, want at least %d", len(seen[kind]), kind, min)
		}
	}

	again, err := policyDocument(spec)
	if err != nil || !bytes.Equal(again.Text, bp.Text) {
		t.Errorf("a second document from the same spec differs (%v)", err)
	}
}

// TestPolicyDocumentSpecs checks other sizes and ports compile, with the
// flows still allowed only by the rule near the end.
func TestPolicyDocumentSpecs(t *testing.T) {
	for _, tt := range []struct {
		name   string
		change func(*policySpec)
	}{
		{"ten rules", func(s *policySpec) { s.Rules = 10 }},
		{"a thousand rules", func(s *policySpec) { s.Rules = 1000 }},
		{"ports at range ends", func(s *policySpec) { s.Ports, s.Probe = []uint16{1, 1023, 65535}, 8000 }},
		{"one routed prefix", func(s *policySpec) { s.Routed = s.Routed[:1] }},
		{"IPv6", func(s *policySpec) {
			s.Target = netip.MustParseAddr("fd00:1::10")
			s.Routed = []netip.Prefix{netip.MustParsePrefix("fd00:1::/64"), netip.MustParsePrefix("fd00:2::/64")}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			spec := benchSpec()
			tt.change(&spec)
			bp, c, warnings := compileBench(t, spec)
			if len(warnings) > 0 {
				t.Errorf("policy set would warn: %q", warnings)
			}
			for _, p := range spec.Ports {
				if d := c.Decide(spec.User, spec.Target, p, wire.ProtoTCP); d.Rule != bp.Rule {
					t.Errorf("port %d: %s; want rule %d", p, d.Reason, bp.Rule)
				}
			}
			if d := c.Decide(spec.User, spec.Target, spec.Probe, wire.ProtoTCP); d.Allow {
				t.Errorf("probe port %d: %s", spec.Probe, d.Reason)
			}
		})
	}
}

func TestPolicyDocumentRefuses(t *testing.T) {
	for _, tt := range []struct {
		name   string
		change func(*policySpec)
	}{
		{"too few rules", func(s *policySpec) { s.Rules = 9 }},
		{"no ports", func(s *policySpec) { s.Ports = nil }},
		{"target outside the first routed prefix", func(s *policySpec) { s.Target = netip.MustParseAddr("10.0.0.1") }},
		{"nothing routed", func(s *policySpec) { s.Routed = nil }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			spec := benchSpec()
			tt.change(&spec)
			if _, err := policyDocument(spec); err == nil {
				t.Error("got no error")
			}
		})
	}
}

func TestExcludePorts(t *testing.T) {
	for _, tt := range []struct {
		name     string
		in       []portRange
		reserved []uint16
		want     []portRange
	}{
		{"untouched", []portRange{{22, 22}, {8000, 8999}}, []uint16{5201}, []portRange{{22, 22}, {8000, 8999}}},
		{"split", []portRange{{5000, 5999}}, []uint16{5201}, []portRange{{5000, 5200}, {5202, 5999}}},
		{"first and last", []portRange{{7007, 7010}}, []uint16{7007, 7010}, []portRange{{7008, 7009}}},
		{"a single port dropped", []portRange{{7007, 7007}, {22, 22}}, []uint16{7007}, []portRange{{22, 22}}},
		{"two in one range", []portRange{{7000, 7999}}, []uint16{7007, 7008}, []portRange{{7000, 7006}, {7009, 7999}}},
		{"every port", []portRange{{0, 65535}}, []uint16{0, 65535}, []portRange{{1, 65534}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := excludePorts(tt.in, tt.reserved)
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(portRange{})); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	for _, tt := range []struct {
		r    portRange
		want string
	}{{portRange{0, 65535}, "*"}, {portRange{22, 22}, "22"}, {portRange{8000, 8999}, "8000-8999"}} {
		if got := tt.r.String(); got != tt.want {
			t.Errorf("%v.String() = %q, want %q", tt.r, got, tt.want)
		}
	}
}
