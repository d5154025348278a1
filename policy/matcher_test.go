package policy

import (
	"net/netip"
	"testing"

	"github.com/warrennet/warren/overlay/wire"
)

func addr(s string) netip.Addr  { return netip.MustParseAddr(s) }
func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func ports(s string) wire.PortRange {
	r, err := wire.ParsePortRange(s)
	if err != nil {
		panic(err)
	}
	return r
}

func grant(prefix, portRange string, proto wire.Proto, rule int) wire.Grant {
	return wire.Grant{Prefix: pfx(prefix), Ports: ports(portRange), Proto: proto, Rule: rule}
}

func TestMatcher(t *testing.T) {
	grants := []wire.Grant{
		grant("10.0.0.0/8", "443", wire.ProtoTCP, 4),
		grant("10.1.0.0/16", "22", wire.ProtoTCP, 2),
		grant("10.1.2.0/24", "8000-8999", wire.ProtoUDP, 3),
		grant("10.1.2.3/32", "*", wire.ProtoICMP, 5),
		grant("10.1.2.3/32", "53", wire.ProtoAny, 6),
		grant("10.0.0.0/8", "443", wire.ProtoTCP, 1), // same as rule 4's: the lower rule wins
		grant("2001:db8::/64", "*", wire.ProtoAny, 7),
		{Rule: 9}, // invalid prefix: ignored
	}
	m := NewMatcher(grants)
	if got, want := m.Len(), 7; got != want {
		t.Errorf("Len() = %d, want %d", got, want)
	}
	tests := []struct {
		name  string
		dst   string
		port  uint16
		proto wire.Proto
		rule  int // 0: denied
	}{
		{"shorter prefix applies below a longer one", "10.1.2.3", 443, wire.ProtoTCP, 1},
		{"longer prefix", "10.1.9.9", 22, wire.ProtoTCP, 2},
		{"port outside every range", "10.1.2.3", 23, wire.ProtoTCP, 0},
		{"range start", "10.1.2.200", 8000, wire.ProtoUDP, 3},
		{"range end", "10.1.2.200", 8999, wire.ProtoUDP, 3},
		{"past range end", "10.1.2.200", 9000, wire.ProtoUDP, 0},
		{"udp range is not tcp", "10.1.2.200", 8000, wire.ProtoTCP, 0},
		{"icmp ignores ports", "10.1.2.3", 7, wire.ProtoICMP, 5},
		{"icmp elsewhere", "10.1.2.4", 0, wire.ProtoICMP, 0},
		{"any covers udp", "10.1.2.3", 53, wire.ProtoUDP, 6},
		{"any covers tcp", "10.1.2.3", 53, wire.ProtoTCP, 6},
		{"outside every prefix", "192.168.0.1", 443, wire.ProtoTCP, 0},
		{"ipv6", "2001:db8::1", 1, wire.ProtoUDP, 7},
		{"ipv6 outside", "2001:db8:1::1", 1, wire.ProtoUDP, 0},
		{"ipv4-mapped is ipv6", "::ffff:10.1.2.3", 443, wire.ProtoTCP, 0},
		{"zoned address", "2001:db8::1%eth0", 1, wire.ProtoUDP, 0},
		{"invalid address", "", 443, wire.ProtoTCP, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var dst netip.Addr
			if tt.dst != "" {
				dst = addr(tt.dst)
			}
			rule, ok := m.Allow(dst, tt.port, tt.proto)
			if rule != tt.rule || ok != (tt.rule != 0) {
				t.Errorf("Allow(%v, %d, %s) = %d, %v, want %d", dst, tt.port, tt.proto, rule, ok, tt.rule)
			}
			// The matcher agrees with wire.Grant.Allows, grant by grant.
			want := 0
			for _, g := range grants {
				if g.Prefix.IsValid() && g.Allows(dst, tt.port, tt.proto) && (want == 0 || g.Rule < want) {
					want = g.Rule
				}
			}
			if want != tt.rule {
				t.Errorf("wire.Grant.Allows gives rule %d, the table %d", want, tt.rule)
			}
		})
	}
}

func TestMatcherEmpty(t *testing.T) {
	for _, m := range []*Matcher{nil, NewMatcher(nil)} {
		if rule, ok := m.Allow(addr("10.0.0.1"), 22, wire.ProtoTCP); ok {
			t.Errorf("empty matcher allows by rule %d", rule)
		}
	}
}

func BenchmarkMatcher(b *testing.B) {
	var grants []wire.Grant
	for i := range 200 {
		grants = append(grants, wire.Grant{
			Prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i), 0, 0}), 16+i%9),
			Ports:  wire.PortRange{First: uint16(i), Last: uint16(i + 10)},
			Proto:  wire.ProtoTCP, Rule: i + 1,
		})
	}
	m := NewMatcher(grants)
	dst := addr("10.150.0.1")
	b.ReportAllocs()
	for b.Loop() {
		m.Allow(dst, 155, wire.ProtoTCP)
	}
}
