package netstack

import (
	"errors"
	"net/netip"
	"strings"
	"syscall"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip"
)

func TestConfigValidate(t *testing.T) {
	h := &funcs{}
	for _, tc := range []struct {
		name    string
		cfg     Config
		wantErr string // "" for valid
	}{
		{"zero but handler", Config{Handler: h}, ""},
		{"full", Config{Handler: h, MTU: 1420, Addresses: []netip.Addr{nodeV4, nodeV6}, MaxInFlightTCP: 10}, ""},
		{"no handler", Config{}, "handler is required"},
		{"mtu too small", Config{Handler: h, MTU: 576}, "mtu 576"},
		{"mtu too big", Config{Handler: h, MTU: 65536}, "mtu 65536"},
		{"invalid address", Config{Handler: h, Addresses: []netip.Addr{{}}}, "not a unicast"},
		{"mapped address", Config{Handler: h, Addresses: []netip.Addr{netip.MustParseAddr("::ffff:100.96.0.1")}}, "not a unicast"},
		{"multicast address", Config{Handler: h, Addresses: []netip.Addr{netip.MustParseAddr("ff02::1")}}, "not a unicast"},
		{"zoned address", Config{Handler: h, Addresses: []netip.Addr{netip.MustParseAddr("fe80::1%eth0")}}, "zone"},
		{"negative bound", Config{Handler: h, MaxUDPFlows: -1}, "max udp flows"},
		{"negative timeout", Config{Handler: h, UDPIdleTimeout: -1}, "idle timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("Validate = %v, want nil", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("Validate = %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	c := Config{Handler: &funcs{}, MaxInFlightTCP: 30}.withDefaults()
	if c.MTU != DefaultMTU || c.UDPIdleTimeout != DefaultUDPIdleTimeout || c.MaxUDPFlows != DefaultMaxUDPFlows || c.MaxPings != DefaultMaxPings || c.Logger == nil {
		t.Errorf("defaults not applied: %+v", c)
	}
	if c.MaxInFlightTCPPerSource != 20 {
		t.Errorf("MaxInFlightTCPPerSource = %d, want 2/3 of 30", c.MaxInFlightTCPPerSource)
	}
	if d := (Config{Handler: &funcs{}, MaxInFlightTCP: 1}).withDefaults(); d.MaxInFlightTCPPerSource != 1 {
		t.Errorf("MaxInFlightTCPPerSource = %d for a bound of 1, want 1", d.MaxInFlightTCPPerSource)
	}
}

func TestNewRejectsInvalidConfig(t *testing.T) {
	checkLeaks(t)
	if _, err := New(Config{}); err == nil {
		t.Error("New without a handler succeeded")
	}
}

func TestConvertErr(t *testing.T) {
	if convertErr(nil) != nil {
		t.Error("convertErr(nil) != nil")
	}
	for _, tc := range []struct {
		in   tcpip.Error
		want syscall.Errno
	}{
		{&tcpip.ErrConnectionRefused{}, syscall.ECONNREFUSED},
		{&tcpip.ErrConnectionReset{}, syscall.ECONNRESET},
		{&tcpip.ErrTimeout{}, syscall.ETIMEDOUT},
		{&tcpip.ErrHostUnreachable{}, syscall.EHOSTUNREACH},
		{&tcpip.ErrDuplicateAddress{}, syscall.EEXIST},
	} {
		err := convertErr(tc.in)
		if !errors.Is(err, tc.want) {
			t.Errorf("convertErr(%v) = %v, not %v", tc.in, err, tc.want)
		}
		if err.Error() != tc.in.String() {
			t.Errorf("convertErr(%v).Error() = %q, want gVisor's message", tc.in, err.Error())
		}
	}
	// No errno equivalent: still an error, unwrapping to nothing.
	if err := convertErr(&tcpip.ErrMalformedHeader{}); err == nil || errors.Unwrap(err) != nil {
		t.Errorf("convertErr(malformed) = %v (unwraps to %v)", err, errors.Unwrap(err))
	}
}

func TestFlowString(t *testing.T) {
	for _, tc := range []struct {
		f    Flow
		want string
	}{
		{Flow{netip.MustParseAddrPort("100.96.0.2:5000"), netip.MustParseAddrPort("192.168.0.10:22"), ProtoTCP}, "tcp 100.96.0.2:5000->192.168.0.10:22"},
		{Flow{netip.MustParseAddrPort("[fd7a::2]:53"), netip.MustParseAddrPort("[2001:db8::1]:53"), ProtoUDP}, "udp [fd7a::2]:53->[2001:db8::1]:53"},
		{Flow{netip.AddrPortFrom(clientV4, 0), netip.AddrPortFrom(nodeV4, 0), ProtoICMP}, "icmp 100.96.0.2->100.96.0.1"},
	} {
		if got := tc.f.String(); got != tc.want {
			t.Errorf("String = %q, want %q", got, tc.want)
		}
	}
}
