package connector

import (
	"net/netip"
	"strings"
	"testing"
)

func TestNeverServed(t *testing.T) {
	for _, tc := range []struct {
		addr string
		want string // a word of the reason; "" = the guard lets it through
	}{
		// Served when routed.
		{"192.0.2.10", ""},
		{"10.0.0.1", ""},
		{"192.168.255.255", ""}, // a subnet's broadcast is the admin's to route
		{"100.95.255.255", ""},
		{"100.112.0.0", ""},
		{"2001:db8::10", ""},
		{"fd00::1", ""},
		{"64:ff9b::c000:20a", ""},          // NAT64 of 192.0.2.10
		{"2002:c000:20a::1", ""},           // 6to4 of 192.0.2.10
		{"2001:0:c000:20a::3fff:fdf5", ""}, // Teredo: server 192.0.2.10, client 192.0.2.10

		// IPv4.
		{"0.0.0.0", "this network"},
		{"0.1.2.3", "this network"},
		{"127.0.0.1", "loopback"},
		{"127.255.255.254", "loopback"},
		{"169.254.169.254", "link-local"},
		{"224.0.0.1", "multicast"},
		{"239.255.255.250", "multicast"},
		{"255.255.255.255", "limited broadcast"},
		{"240.0.0.1", "reserved"},
		{"100.96.0.1", "overlay"},
		{"100.111.255.255", "overlay"},

		// IPv6.
		{"::", "unspecified"},
		{"::1", "loopback"},
		{"fe80::1", "link-local"},
		{"fe80::1%eth0", "zone"},
		{"ff02::1", "multicast"},
		{"ff05::2", "multicast"},

		// Embedded IPv4.
		{"::ffff:127.0.0.1", "IPv4-mapped"},
		{"::ffff:192.0.2.10", "IPv4-mapped"},
		{"::ffff:0.0.0.0", "IPv4-mapped"},
		{"::ffff:255.255.255.255", "IPv4-mapped"},
		{"::127.0.0.1", "IPv4-compatible"},
		{"::169.254.169.254", "IPv4-compatible"},
		{"64:ff9b::127.0.0.1", "NAT64 form of 127.0.0.1, loopback"},
		{"64:ff9b::169.254.169.254", "link-local"},
		{"64:ff9b::255.255.255.255", "limited broadcast"},
		{"64:ff9b::0.0.0.0", "this network"},
		{"64:ff9b:1::7f00:1", "NAT64 (local-use) form of 127.0.0.1"},
		{"64:ff9b:1::c000:20a", ""}, // local-use NAT64 of 192.0.2.10
		{"2002:7f00:1::1", "6to4 form of 127.0.0.1"},
		{"2002:a9fe:a9fe::1", "link-local"},
		{"2002:ffff:ffff::1", "limited broadcast"},
		{"2001:0:7f00:1::1", "Teredo (server) form of 127.0.0.1"},
		{"2001:0:c000:20a::80ff:fffe", "Teredo (client) form of 127.0.0.1"},

		// Not addresses.
		{"", "not an address"},
	} {
		var a netip.Addr
		if tc.addr != "" {
			a = netip.MustParseAddr(tc.addr)
		}
		got := neverServed(a)
		switch {
		case tc.want == "" && got != "":
			t.Errorf("neverServed(%s) = %q, want it served", tc.addr, got)
		case tc.want != "" && !strings.Contains(got, tc.want):
			t.Errorf("neverServed(%s) = %q, want a reason with %q", tc.addr, got, tc.want)
		}
	}
}

func TestIsHost(t *testing.T) {
	host := map[netip.Addr]bool{
		netip.MustParseAddr("192.168.0.5"): true,
		netip.MustParseAddr("2001:db8::5"): true,
	}
	for _, tc := range []struct {
		addr string
		want bool
	}{
		{"192.168.0.5", true},
		{"::ffff:192.168.0.5", true},
		{"64:ff9b::192.168.0.5", true},
		{"2002:c0a8:5::1", true},
		{"2001:db8::5", true},
		{"192.168.0.6", false},
		{"2001:db8::6", false},
	} {
		if got := isHost(host, netip.MustParseAddr(tc.addr)); got != tc.want {
			t.Errorf("isHost(%s) = %v, want %v", tc.addr, got, tc.want)
		}
	}
}
