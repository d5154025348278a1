package connector

import (
	"net/netip"
	"testing"
)

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
