package platform

import (
	"encoding/binary"
	"encoding/hex"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// unhex decodes hex written with spaces and line breaks for reading.
func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestMarshalRouteMsg checks the messages byte by byte against macOS's
// layouts: struct rt_msghdr (92 bytes: msglen, version 5, type, index,
// flags at 8, addrs at 12, seq at 20), then sockaddr_in (16) or
// sockaddr_in6 (28), sockaddr_dl (20: index at 2, name length at 5, name
// at 8) and the netmask, each a multiple of 4 bytes.
func TestMarshalRouteMsg(t *testing.T) {
	zeros := func(n int) string { return strings.Repeat("00", n) }
	tests := []struct {
		name string
		got  []byte
		want string
	}{
		{
			name: "add 10.0.0.0/8 through utun7",
			got:  marshalRouteMsg(rtmAdd, 1, netip.MustParsePrefix("10.0.0.0/8"), 9, "utun7"),
			want: "9000 05 01 0900 0000 01880000 07000000 00000000 01000000" + zeros(92-24) +
				"10 02 0000 0a000000" + zeros(8) +
				"14 12 0900 00 05 00 00 7574756e37" + zeros(7) +
				"10 02 0000 ff000000" + zeros(8),
		},
		{
			name: "delete the host route 2001:db8::1/128: RTF_HOST, no netmask",
			got:  marshalRouteMsg(rtmDelete, 2, netip.MustParsePrefix("2001:db8::1/128"), 9, "utun7"),
			want: "8c00 05 02 0900 0000 05880000 03000000 00000000 02000000" + zeros(92-24) +
				"1c 1e 0000 00000000 20010db8000000000000000000000001 00000000" +
				"14 12 0900 00 05 00 00 7574756e37" + zeros(7),
		},
		{
			name: "add 2001:db8::/32: an IPv6 netmask",
			got:  marshalRouteMsg(rtmAdd, 3, netip.MustParsePrefix("2001:db8::/32"), 300, "utun12"),
			want: "a800 05 01 2c01 0000 01880000 07000000 00000000 03000000" + zeros(92-24) +
				"1c 1e 0000 00000000 20010db8000000000000000000000000 00000000" +
				"14 12 2c01 00 06 00 00 7574756e3132" + zeros(6) +
				"1c 1e 0000 00000000 ffffffff000000000000000000000000 00000000",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := unhex(t, tt.want)
			if d := cmp.Diff(want, tt.got); d != "" {
				t.Errorf("message (-want +got):\n%s\nwant % x\ngot  % x", d, want, tt.got)
			}
		})
	}
}

func TestParseRIB(t *testing.T) {
	routes := []fakeRoute{
		{dst: netip.MustParsePrefix("0.0.0.0/0"), index: en0, flags: gwFlags, gwAddr: netip.MustParseAddr("192.168.1.1")},
		{dst: netip.MustParsePrefix("::/0"), index: en0, flags: gwFlags, gwAddr: netip.MustParseAddr("fe80::1")},
		{dst: netip.MustParsePrefix("192.168.1.0/24"), index: en0, flags: 0x101, gwLink: en0},
		{dst: netip.MustParsePrefix("10.0.0.0/9"), index: utun7, flags: warrenRouteFlags, gwLink: utun7},
		{dst: netip.MustParsePrefix("2001:db8:8000::/33"), index: utun7, flags: warrenRouteFlags, gwLink: utun7},
		{dst: netip.MustParsePrefix("203.0.113.7/32"), index: utun7, flags: warrenRouteFlags | rtfHost, gwLink: utun7},
	}
	var rib []byte
	for _, r := range routes {
		rib = append(rib, kernelRouteMsg(r)...)
	}
	// A link-layer entry (its destination a sockaddr_dl) and a message of
	// another version are skipped.
	arp := kernelRouteMsg(fakeRoute{dst: netip.MustParsePrefix("192.168.1.1/32"), index: en0, flags: 0x405, gwLink: en0})
	arp[92+1] = afLink
	old := kernelRouteMsg(routes[0])
	old[2] = 4
	rib = append(append(rib, arp...), old...)

	got, err := parseRIB(rib)
	if err != nil {
		t.Fatal(err)
	}
	want := []rtEntry{
		{Type: rtmGet, Index: en0, Flags: gwFlags, Dst: netip.MustParsePrefix("0.0.0.0/0"), GatewayAddr: netip.MustParseAddr("192.168.1.1")},
		{Type: rtmGet, Index: en0, Flags: gwFlags, Dst: netip.MustParsePrefix("::/0"), GatewayAddr: netip.MustParseAddr("fe80::1")}, // scope cleared
		{Type: rtmGet, Index: en0, Flags: 0x101, Dst: netip.MustParsePrefix("192.168.1.0/24"), GatewayLink: en0},
		{Type: rtmGet, Index: utun7, Flags: warrenRouteFlags, Dst: netip.MustParsePrefix("10.0.0.0/9"), GatewayLink: utun7},
		{Type: rtmGet, Index: utun7, Flags: warrenRouteFlags, Dst: netip.MustParsePrefix("2001:db8:8000::/33"), GatewayLink: utun7},
		{Type: rtmGet, Index: utun7, Flags: warrenRouteFlags | rtfHost, Dst: netip.MustParsePrefix("203.0.113.7/32"), GatewayLink: utun7},
	}
	if d := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }), cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); d != "" {
		t.Errorf("parseRIB (-want +got):\n%s", d)
	}
	owned, err := ownedRoutes(rib, utun7)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(rts("10.0.0.0/9", "203.0.113.7/32", "2001:db8:8000::/33"), owned, cmpState); d != "" {
		t.Errorf("ownedRoutes (-want +got):\n%s", d)
	}

	for _, cut := range []int{1, 3, 50, len(kernelRouteMsg(routes[0])) - 1} {
		if _, err := parseRIB(rib[:cut]); err == nil {
			t.Errorf("parseRIB of the first %d bytes succeeded, want an error", cut)
		}
	}
	// A message that declares more sockaddrs than it holds.
	short := kernelRouteMsg(routes[2])
	binary.LittleEndian.PutUint32(short[12:], 0xff)
	if _, err := parseRIB(short); err == nil {
		t.Error("parseRIB of a message missing sockaddrs succeeded, want an error")
	}
}

func TestMaskBits(t *testing.T) {
	tests := []struct {
		name string
		sa   string
		v4   bool
		bits int
		ok   bool
	}{
		{name: "v4 /0, empty", sa: "", v4: true, bits: 0, ok: true},
		{name: "v4 /8 short", sa: "05 00 0000 ff", v4: true, bits: 8, ok: true},
		{name: "v4 /20 short", sa: "07 00 0000 fffff0", v4: true, bits: 20, ok: true},
		{name: "v4 /32 full", sa: "10 02 0000 ffffffff 0000000000000000", v4: true, bits: 32, ok: true},
		{name: "v4 not contiguous", sa: "08 02 0000 ff00ff00", v4: true, ok: false},
		{name: "v6 /0 header only", sa: "08 1e 0000 00000000", bits: 0, ok: true},
		{name: "v6 /64 short", sa: "10 00 0000 00000000 ffffffffffffffff", bits: 64, ok: true},
		{name: "v6 /128 full", sa: "1c 1e 0000 00000000 ffffffffffffffffffffffffffffffff 00000000", bits: 128, ok: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bits, ok := maskBits(unhex(t, tt.sa), tt.v4)
			if bits != tt.bits || ok != tt.ok {
				t.Errorf("maskBits = %d, %v; want %d, %v", bits, ok, tt.bits, tt.ok)
			}
		})
	}
}

// TestAddrRequests checks the ioctl requests against the sizes their
// numbers carry and macOS's layouts: struct ifaliasreq (name, addr,
// dstaddr, mask: 16 bytes each), struct ifreq (name, sockaddr), struct
// in6_aliasreq (name, addr at 16, dstaddr at 44, prefixmask at 72, flags
// at 100, lifetimes at 104: two time_t then vltime and pltime).
func TestAddrRequests(t *testing.T) {
	zeros := func(n int) string { return strings.Repeat("00", n) }
	name := "7574756e37" + zeros(11) // "utun7" in IFNAMSIZ
	tests := []struct {
		name   string
		family int
		req    uint32
		arg    []byte
		want   string
	}{
		{
			name: "add 100.96.0.2/32",
			want: name + "1002 0000 64600002" + zeros(8) + "1002 0000 64600002" + zeros(8) + "1002 0000 ffffffff" + zeros(8),
		},
		{
			name: "delete 100.96.0.2",
			want: name + "1002 0000 64600002" + zeros(8),
		},
		{
			name: "add fd7a::2/64",
			want: name + "1c1e 0000 00000000 fd7a0000000000000000000000000002 00000000" + zeros(28) +
				"1c1e 0000 00000000 ffffffffffffffff0000000000000000 00000000" + "20000000" + zeros(16) + "ffffffff ffffffff",
		},
		{
			name: "delete fd7a::2",
			want: name + "1c1e 0000 00000000 fd7a0000000000000000000000000002 00000000" + zeros(288-44),
		},
	}
	tests[0].family, tests[0].req, tests[0].arg = aliasReq("utun7", netip.MustParsePrefix("100.96.0.2/32"))
	tests[1].family, tests[1].req, tests[1].arg = deleteAddrReq("utun7", netip.MustParsePrefix("100.96.0.2/32"))
	tests[2].family, tests[2].req, tests[2].arg = aliasReq("utun7", netip.MustParsePrefix("fd7a::2/64"))
	tests[3].family, tests[3].req, tests[3].arg = deleteAddrReq("utun7", netip.MustParsePrefix("fd7a::2/128"))
	wantReq := []struct {
		family int
		req    uint32
	}{{afInet, 0x8040691a}, {afInet, 0x80206919}, {afInet6, 0x8080691a}, {afInet6, 0x81206919}}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.family != wantReq[i].family || tt.req != wantReq[i].req {
				t.Errorf("ioctl %#x on family %d, want %#x on %d", tt.req, tt.family, wantReq[i].req, wantReq[i].family)
			}
			if size := int(tt.req>>16) & 0x1fff; size != len(tt.arg) {
				t.Errorf("request of %d bytes, ioctl %#x takes %d", len(tt.arg), tt.req, size)
			}
			if d := cmp.Diff(unhex(t, tt.want), tt.arg); d != "" {
				t.Errorf("request (-want +got):\n%s", d)
			}
		})
	}
}

func TestUtunName(t *testing.T) {
	tests := map[string]string{
		"utun":     "utun",
		"utun7":    "utun7",
		"utun123":  "utun123",
		"warren0":  "utun",
		"utunx":    "utun",
		"utun-1":   "utun",
		"tun0":     "utun",
		"utun9999": "utun9999",
	}
	for in, want := range tests {
		if got := utunName(in); got != want {
			t.Errorf("utunName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRIBDefaultGateways(t *testing.T) {
	var rib []byte
	for _, r := range []fakeRoute{
		{dst: netip.MustParsePrefix("::/0"), index: en0, flags: gwFlags, gwAddr: netip.MustParseAddr("fe80::1")},
		{dst: netip.MustParsePrefix("0.0.0.0/0"), index: en0, flags: gwFlags, gwAddr: netip.MustParseAddr("192.168.1.1")},
		{dst: netip.MustParsePrefix("0.0.0.0/0"), index: 5, flags: gwFlags | 0x1000000, gwAddr: netip.MustParseAddr("172.20.10.1")}, // scoped, en1
		{dst: netip.MustParsePrefix("0.0.0.0/0"), index: en0, flags: gwFlags | 0x1000000, gwAddr: netip.MustParseAddr("192.168.1.1")},
		{dst: netip.MustParsePrefix("0.0.0.0/0"), index: utun3, flags: 0x801, gwLink: utun3}, // another VPN's, no gateway
		{dst: netip.MustParsePrefix("192.168.1.0/24"), index: en0, flags: 0x101, gwLink: en0},
		{dst: netip.MustParsePrefix("10.0.0.0/8"), index: en0, flags: gwFlags, gwAddr: netip.MustParseAddr("192.168.1.254")},
	} {
		rib = append(rib, kernelRouteMsg(r)...)
	}
	got, err := ribDefaultGateways(rib)
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Addr{netip.MustParseAddr("172.20.10.1"), netip.MustParseAddr("192.168.1.1"), netip.MustParseAddr("fe80::1")}
	if d := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); d != "" {
		t.Errorf("ribDefaultGateways (-want +got):\n%s", d)
	}
}

func TestConnectedPrefixes(t *testing.T) {
	got := connectedPrefixes(pfx("192.168.1.20/24", "fe80::1c2a/64", "10.8.0.2/32", "2001:db8:1::5/64", "192.168.1.30/24", "127.0.0.1/8"))
	want := pfx("10.8.0.2/32", "192.168.1.0/24", "2001:db8:1::/64")
	if d := cmp.Diff(want, got, cmpState, cmpopts.EquateEmpty()); d != "" {
		t.Errorf("connectedPrefixes (-want +got):\n%s", d)
	}
}

// FuzzParseRIB: whatever the kernel hands over, parsing returns or fails;
// it never panics, and every route it returns is a valid, masked prefix.
func FuzzParseRIB(f *testing.F) {
	f.Add(kernelRouteMsg(fakeRoute{dst: netip.MustParsePrefix("10.0.0.0/9"), index: utun7, flags: warrenRouteFlags, gwLink: utun7}))
	f.Add(kernelRouteMsg(fakeRoute{dst: netip.MustParsePrefix("::/0"), index: en0, flags: gwFlags, gwAddr: netip.MustParseAddr("fe80::1")}))
	f.Add(marshalRouteMsg(rtmAdd, 1, netip.MustParsePrefix("2001:db8::/32"), 9, "utun7"))
	f.Fuzz(func(t *testing.T, b []byte) {
		es, err := parseRIB(b)
		if err != nil {
			return
		}
		for _, e := range es {
			if !e.Dst.IsValid() || e.Dst != e.Dst.Masked() {
				t.Errorf("parseRIB returned destination %v", e.Dst)
			}
		}
	})
}

// TestParseKernelBytes reads sockaddrs as macOS wrote them, recorded in
// golang.org/x/net/route's address_darwin_test.go (and golang/go#70528):
// netmasks with their family set or not, cut after their last non-zero
// byte, a destination of length 0, a link-local gateway with its scope
// embedded. Each is put behind an rt_msghdr of an RTM_GET.
func TestParseKernelBytes(t *testing.T) {
	msg := func(index int, flags, addrs uint32, sas string) []byte {
		h := make([]byte, sizeofRtMsghdr)
		h[2], h[3] = rtmVersion, rtmGet
		binary.LittleEndian.PutUint16(h[4:], uint16(index))
		binary.LittleEndian.PutUint32(h[8:], flags)
		binary.LittleEndian.PutUint32(h[12:], addrs)
		b := append(h, unhex(t, sas)...)
		binary.LittleEndian.PutUint16(b, uint16(len(b)))
		return b
	}
	const dgn = rtaDst | rtaGateway | rtaNetmask
	tests := []struct {
		name string
		msg  []byte
		want rtEntry
	}{
		{
			name: "192.168.86.0/24 on interface 4, mask of family 0xff",
			msg: msg(4, 0x101, dgn, "10020000 c0a85600 0000000000000000"+
				"14120400 06000000 0000000000000000 00000000"+
				"07ffffff ffffff00"),
			want: rtEntry{Type: rtmGet, Index: 4, Flags: 0x101, Dst: netip.MustParsePrefix("192.168.86.0/24"), GatewayLink: 4},
		},
		{
			name: "100.113.0.0/16 through utun4319, a Warren route",
			msg: msg(33, warrenRouteFlags, dgn, "10020000 64710000 0000000000000000"+
				"14122100 01080000 7574756e34333139 00000000"+
				"06020000 ffff0000"),
			want: rtEntry{Type: rtmGet, Index: 33, Flags: warrenRouteFlags, Dst: netip.MustParsePrefix("100.113.0.0/16"), GatewayLink: 33},
		},
		{
			name: "::/0 via fe80::2d0:4cff:fe10:15d2, a two-byte mask",
			msg: msg(13, gwFlags, dgn, "1c1e0000 00000000 00000000000000000000000000000000 00000000"+
				"1c1e0000 00000000 fe80000000000000 02d04cfffe1015d2 00000000"+
				"021e0000"),
			want: rtEntry{Type: rtmGet, Index: 13, Flags: gwFlags, Dst: netip.MustParsePrefix("::/0"), GatewayAddr: netip.MustParseAddr("fe80::2d0:4cff:fe10:15d2")},
		},
		{
			name: "a destination of length 0 is ::, the scope leaves the gateway",
			msg: msg(33, gwFlags, dgn, "001e0000"+
				"1c1e0000 00000000 fe80002100000000 f22f4bfffe093bff 00000000"+
				"0e1e0000 00000000 ffffffffffff0000"),
			want: rtEntry{Type: rtmGet, Index: 33, Flags: gwFlags, Dst: netip.MustParsePrefix("::/48"), GatewayAddr: netip.MustParseAddr("fe80::f22f:4bff:fe09:3bff")},
		},
		{
			name: "a whole message: a scoped default route with no gateway sockaddr",
			msg: unhex(t, "84000504 01000000 03080001 15000000 1b010000 f55a0000 03000000"+strings.Repeat("00", 92-28)+
				"10020000 00000000 0000000000000000"+
				"00020000"+
				"14120000 00000000 0000000000000000 00000000"),
			want: rtEntry{Type: rtmGet, Index: 1, Flags: 0x01000803, Dst: netip.MustParsePrefix("0.0.0.0/0")},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseRIB(tt.msg)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff([]rtEntry{tt.want}, got, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }), cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); d != "" {
				t.Errorf("parseRIB (-want +got):\n%s", d)
			}
		})
	}
}
