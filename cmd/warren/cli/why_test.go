package cli

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/warrennet/warren/overlay/ctl"
	"github.com/warrennet/warren/overlay/wire"
)

func TestParseWhyArg(t *testing.T) {
	ip := netip.MustParseAddr("192.168.0.10")
	v6 := netip.MustParseAddr("2001:db8::1")
	tests := []struct {
		arg  string
		want ctl.WhyQuery
		err  string
	}{
		{"192.168.0.10", ctl.WhyQuery{IP: ip}, ""},
		{" 192.168.0.10 ", ctl.WhyQuery{IP: ip}, ""},
		{"::ffff:192.168.0.10", ctl.WhyQuery{IP: ip}, ""},
		{"192.168.0.10:8080", ctl.WhyQuery{IP: ip, Port: 8080, HasPort: true}, ""},
		{"192.168.0.10:8080/tcp", ctl.WhyQuery{IP: ip, Port: 8080, HasPort: true, Proto: wire.ProtoTCP}, ""},
		{"192.168.0.10:53/udp", ctl.WhyQuery{IP: ip, Port: 53, HasPort: true, Proto: wire.ProtoUDP}, ""},
		{"192.168.0.10/icmp", ctl.WhyQuery{IP: ip, Proto: wire.ProtoICMP}, ""},
		{"2001:db8::1", ctl.WhyQuery{IP: v6}, ""},
		{"[2001:db8::1]:22", ctl.WhyQuery{IP: v6, Port: 22, HasPort: true}, ""},
		{"[2001:db8::1]:22/udp", ctl.WhyQuery{IP: v6, Port: 22, HasPort: true, Proto: wire.ProtoUDP}, ""},
		{"2001:db8::1/icmp", ctl.WhyQuery{IP: v6, Proto: wire.ProtoICMP}, ""},
		{"192.168.0.0/24", ctl.WhyQuery{}, `"192.168.0.0/24": protocol "24" is not one of: tcp, udp, icmp`},
		{"192.168.0.10:22/any", ctl.WhyQuery{}, `"192.168.0.10:22/any": protocol "any" is not one of: tcp, udp, icmp`},
		{"192.168.0.10:99999", ctl.WhyQuery{}, `"192.168.0.10:99999" is not IP, NAME, IP:PORT or NAME:PORT, optionally /PROTO (IPv6 with a port: [2001:db8::1]:22)`},
		{"office-server", ctl.WhyQuery{Host: "office-server"}, ""},
		{"office-server:22", ctl.WhyQuery{Host: "office-server", Port: 22, HasPort: true}, ""},
		{"db.corp.example:5432/tcp", ctl.WhyQuery{Host: "db.corp.example", Port: 5432, HasPort: true, Proto: wire.ProtoTCP}, ""},
		{"office-server/icmp", ctl.WhyQuery{Host: "office-server", Proto: wire.ProtoICMP}, ""},
		{"office-server/udp", ctl.WhyQuery{}, `"office-server/udp": give a port with udp, as in office-server:53/udp`},
		{"office-server:ssh", ctl.WhyQuery{}, `"office-server:ssh" is not IP, NAME, IP:PORT or NAME:PORT, optionally /PROTO (IPv6 with a port: [2001:db8::1]:22)`},
		{"1.2.3", ctl.WhyQuery{}, `"1.2.3" is not IP, NAME, IP:PORT or NAME:PORT, optionally /PROTO (IPv6 with a port: [2001:db8::1]:22)`},
		{"fe80::1%eth0", ctl.WhyQuery{}, `"fe80::1%eth0" is not IP, NAME, IP:PORT or NAME:PORT, optionally /PROTO (IPv6 with a port: [2001:db8::1]:22)`},
		{"2001:db8::1/udp", ctl.WhyQuery{}, `"2001:db8::1/udp": give a port with udp, as in [2001:db8::1]:53/udp`},
		{"192.168.0.10:7/icmp", ctl.WhyQuery{}, `"192.168.0.10:7/icmp": icmp has no ports; ask about 192.168.0.10/icmp`},
		{"192.168.0.10/udp", ctl.WhyQuery{}, `"192.168.0.10/udp": give a port with udp, as in 192.168.0.10:53/udp`},
	}
	for _, tt := range tests {
		got, err := parseWhyArg(tt.arg)
		if tt.err != "" {
			if err == nil || err.Error() != tt.err {
				t.Errorf("parseWhyArg(%q) error = %v, want %q", tt.arg, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("parseWhyArg(%q) = %+v, %v; want %+v", tt.arg, got, err, tt.want)
		}
	}
}

func TestWhyText(t *testing.T) {
	ip := netip.MustParseAddr("192.168.0.10")
	deny := &wire.PolicyDecision{Reason: "denied by policy: no rule lets alice@example.com reach 192.168.0.10:8080/tcp"}
	tunnelled := "192.168.0.10 is tunnelled: route 192.168.0.0/24 via office"
	tests := []struct {
		name string
		q    ctl.WhyQuery
		why  ctl.Why
		want string
	}{
		{"plain IP, no policy words (an older daemon)", ctl.WhyQuery{IP: ip}, ctl.Why{IP: ip, Tunnelled: true, Reason: tunnelled},
			tunnelled + "\n"},
		{"plain IP, allow-all", ctl.WhyQuery{IP: ip}, ctl.Why{IP: ip, Tunnelled: true, Reason: tunnelled, PolicyReason: "allowed: no access policy is set (allow-all)"},
			tunnelled + "\nallowed: no access policy is set (allow-all)\n"},
		{"a denied port", ctl.WhyQuery{IP: ip, Port: 8080, HasPort: true}, ctl.Why{IP: ip, Tunnelled: true, Reason: tunnelled, Policy: deny, PolicyReason: deny.Reason},
			tunnelled + "\n" + deny.Reason + "\n"},
		{"a port, not tunnelled, shadowed LAN", ctl.WhyQuery{IP: ip, Port: 22, HasPort: true},
			ctl.Why{IP: ip, Reason: "192.168.0.10 is not tunnelled: no route covers it", LocalLAN: "192.168.0.10 is on this machine's LAN 192.168.0.0/24, which carries it"},
			"192.168.0.10 is not tunnelled: no route covers it\n192.168.0.10 is on this machine's LAN 192.168.0.0/24, which carries it\nthe access policy does not apply: traffic to 192.168.0.10 does not enter the tunnel\n"},
	}
	for _, tt := range tests {
		var buf bytes.Buffer
		printWhy(&buf, tt.q, &tt.why)
		if got := buf.String(); got != tt.want {
			t.Errorf("%s:\ngot:\n%s\nwant:\n%s", tt.name, got, tt.want)
		}
	}
}
