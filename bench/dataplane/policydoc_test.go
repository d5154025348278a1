package dataplane

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// policySpec says what policyDocument generates: an access-policy
// document of Rules rules over many groups, users, prefixes, host names,
// port ranges and protocols, in which User may reach Ports on Target by
// one rule only, near the end. Every other rule that applies to User
// names other ports, many of them on prefixes that hold Target, so the
// connector's policy.Matcher walks a long list of User's grants for
// Target before it finds the one that allows the flow.
type policySpec struct {
	Rules  int        // rules in all; at least 10
	User   string     // the laptop's user
	Target netip.Addr // the LAN host
	// Ports are allowed to User on Target (TCP), by one rule; no other
	// rule lets anyone reach them there over TCP.
	Ports []uint16
	// Probe is a port on Target no rule lets anyone reach over TCP: a
	// connect to it is refused while the document is enforced.
	Probe uint16
	// Routed are the routed prefixes; every destination lies in one,
	// so `policy set` warns of no rule, and the first holds Target.
	Routed []netip.Prefix
}

// benchPolicy is a generated document and what the bench needs to load it.
type benchPolicy struct {
	Text []byte
	// Hosts are the names the rules use: `warren hosts add` them first.
	Hosts []namedHost
	// Rule is the 1-based index of the one rule that lets User reach
	// Ports on Target.
	Rule int
	// Groups and Users count the document's groups and the users they
	// list, User included.
	Groups, Users int
}

// namedHost is a host the document names.
type namedHost struct {
	Name string     `json:"name"`
	Addr netip.Addr `json:"address"`
}

// The document's shape, as policy.Parse reads it.
type (
	policyText struct {
		Groups map[string][]string `json:"groups"`
		Rules  []policyRuleText    `json:"rules"`
		Tests  []policyTestText    `json:"tests"`
	}
	policyRuleText struct {
		From  []string `json:"from"`
		To    []string `json:"to"`
		Proto string   `json:"proto,omitempty"`
	}
	policyTestText struct {
		User  string   `json:"user"`
		Allow []string `json:"allow,omitempty"`
		Deny  []string `json:"deny,omitempty"`
	}
)

// The generated document's size, besides its rules.
const (
	policyGroups       = 24 // groups of policyGroupSize users each
	policyGroupSize    = 12 // users per group (a user is in two groups)
	policyUserEvery    = 4  // the laptop's user is in every fourth group
	policyHosts        = 12 // named hosts
	policyFromTail     = 3  // the allowing rule is this many from the end
	policyDomain       = "bench.example"
	policyHostPrefix   = "svc-"
	policyTargetOffset = 20 // named hosts start this far into a routed prefix
)

// portRange is an inclusive range of ports.
type portRange struct{ first, last uint16 }

func (r portRange) String() string {
	switch {
	case r.first == 0 && r.last == 65535:
		return "*"
	case r.first == r.last:
		return strconv.Itoa(int(r.first))
	default:
		return fmt.Sprintf("%d-%d", r.first, r.last)
	}
}

// policyPorts are the single ports and ranges the rules draw from, as an
// admin would write them; the reserved ports are cut out of them.
var policyPorts = []portRange{
	{22, 22}, {443, 443}, {80, 80}, {3306, 3306}, {5432, 5432}, {6379, 6379}, {8080, 8080}, {8443, 8443},
	{1, 1023}, {8000, 8999}, {5000, 5999}, {7000, 7999}, {9000, 9999}, {3000, 3999}, {10000, 19999},
	{25, 25}, {53, 53}, {389, 389}, {636, 636}, {9200, 9300}, {27017, 27019}, {6000, 6999}, {49152, 65535}, {2049, 2049},
}

// excludePorts returns rs without the reserved ports: a range holding
// one is split around it, a range of only reserved ports is dropped.
func excludePorts(rs []portRange, reserved []uint16) []portRange {
	out := slices.Clone(rs)
	for _, p := range reserved {
		var next []portRange
		for _, r := range out {
			if p < r.first || p > r.last {
				next = append(next, r)
				continue
			}
			if p > r.first {
				next = append(next, portRange{r.first, p - 1})
			}
			if p < r.last {
				next = append(next, portRange{p + 1, r.last})
			}
		}
		out = next
	}
	return out
}

// addrIn returns the i-th address of p, counting from its first and
// wrapping around; never skip, which it steps over.
func addrIn(p netip.Prefix, i int, skip netip.Addr) netip.Addr {
	size := 1 << min(p.Addr().BitLen()-p.Bits(), 30)
	for {
		a := p.Masked().Addr()
		for range i % size {
			a = a.Next()
		}
		if a != skip || size == 1 {
			return a
		}
		i++
	}
}

// withPorts writes a destination: host, address or prefix, then ports;
// an IPv6 address or prefix in brackets.
func withPorts(dest, ports string) string {
	if strings.Contains(dest, ":") {
		dest = "[" + dest + "]"
	}
	return dest + ":" + ports
}

// policyDocument generates the document spec asks for. The same spec
// always gives the same text.
func policyDocument(spec policySpec) (benchPolicy, error) {
	switch {
	case spec.Rules < 10:
		return benchPolicy{}, fmt.Errorf("%d rules: want at least 10", spec.Rules)
	case len(spec.Ports) == 0:
		return benchPolicy{}, errors.New("no ports to allow")
	case len(spec.Routed) == 0 || !spec.Routed[0].Contains(spec.Target):
		return benchPolicy{}, fmt.Errorf("the first routed prefix must hold %v", spec.Target)
	}
	reserved := append(slices.Clone(spec.Ports), spec.Probe)
	tcpPorts := excludePorts(policyPorts, reserved)
	doc := policyText{Groups: map[string][]string{}}
	var bp benchPolicy

	// Groups: user k is in groups k/size and (k/size+groups/2)%groups,
	// so each group shares members with another; the laptop's user is in
	// every policyUserEvery-th group.
	users := policyGroups * policyGroupSize / 2
	user := func(k int) string { return fmt.Sprintf("u%03d@%s", k, policyDomain) }
	group := func(g int) string { return fmt.Sprintf("team-%02d", g) }
	for k := range users {
		g := k / (policyGroupSize / 2)
		for _, gg := range []int{g, (g + policyGroups/2) % policyGroups} {
			doc.Groups[group(gg)] = append(doc.Groups[group(gg)], user(k))
		}
	}
	for g := 0; g < policyGroups; g += policyUserEvery {
		doc.Groups[group(g)] = append(doc.Groups[group(g)], spec.User)
	}
	bp.Groups, bp.Users = len(doc.Groups), users+1

	// Hosts, spread over the routed prefixes.
	for i := range policyHosts {
		p := spec.Routed[i%len(spec.Routed)]
		bp.Hosts = append(bp.Hosts, namedHost{
			Name: fmt.Sprintf("%s%02d", policyHostPrefix, i+1),
			Addr: addrIn(p, policyTargetOffset+i, spec.Target),
		})
	}

	// Destinations: the prefixes that hold Target (its routed prefix,
	// halves and quarters of it, Target alone), named hosts, and small
	// prefixes and addresses in every routed prefix.
	home := spec.Routed[0]
	var targetChain []netip.Prefix
	for bits := home.Bits(); bits <= spec.Target.BitLen(); bits += 2 {
		targetChain = append(targetChain, netip.PrefixFrom(spec.Target, bits).Masked())
	}
	dest := func(i int) string {
		switch i % 5 {
		case 0, 1: // on Target's chain: the Matcher's work
			return targetChain[(i/5)%len(targetChain)].String()
		case 2:
			return bp.Hosts[(i/5)%len(bp.Hosts)].Name
		case 3:
			p := spec.Routed[(i/5)%len(spec.Routed)]
			bits := min(p.Addr().BitLen(), p.Bits()+4)
			return netip.PrefixFrom(addrIn(p, 16*(i/5), spec.Target), bits).Masked().String()
		default:
			p := spec.Routed[(i/5+1)%len(spec.Routed)]
			return addrIn(p, 100+i, spec.Target).String()
		}
	}
	protos := []string{"", "tcp", "udp", "", "any", "icmp", ""}
	bp.Rule = spec.Rules - policyFromTail + 1
	for i := range spec.Rules {
		if i+1 == bp.Rule {
			r := policyRuleText{From: []string{"user:" + spec.User}}
			for _, p := range spec.Ports {
				r.To = append(r.To, netip.AddrPortFrom(spec.Target, p).String())
			}
			doc.Rules = append(doc.Rules, r)
			continue
		}
		if i == 0 {
			// Everyone may ping every routed prefix.
			r := policyRuleText{From: []string{"*"}, Proto: "icmp"}
			for _, p := range spec.Routed {
				r.To = append(r.To, withPorts(p.String(), "*"))
			}
			doc.Rules = append(doc.Rules, r)
			continue
		}
		r := policyRuleText{From: []string{"group:" + group(i%policyGroups)}, Proto: protos[i%len(protos)]}
		if i%5 == 0 {
			r.From = append(r.From, "user:"+user((i*7)%users))
		}
		if i%11 == 0 {
			r.From = append(r.From, "group:"+group((i+5)%policyGroups))
		}
		for j := range 1 + i%3 {
			ports := "*"
			switch r.Proto {
			case "icmp":
			case "udp":
				if (i+j)%2 == 0 {
					ports = policyPorts[(i+j)%len(policyPorts)].String()
				}
			default: // tcp or any
				ports = tcpPorts[(3*i+j)%len(tcpPorts)].String()
			}
			r.To = append(r.To, withPorts(dest(i+j), ports))
		}
		doc.Rules = append(doc.Rules, r)
	}

	// The document's own tests, run by `policy set`.
	allowed := policyTestText{User: spec.User, Deny: []string{netip.AddrPortFrom(spec.Target, spec.Probe).String()}}
	other := policyTestText{User: user(1)}
	for _, p := range spec.Ports {
		d := netip.AddrPortFrom(spec.Target, p).String()
		allowed.Allow = append(allowed.Allow, d)
		other.Deny = append(other.Deny, d)
	}
	doc.Tests = []policyTestText{allowed, other}

	text, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return benchPolicy{}, err
	}
	bp.Text = append(text, '\n')
	return bp, nil
}
