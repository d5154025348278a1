package routes

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestNeverServed(t *testing.T) {
	for _, tc := range []struct {
		addr string
		want string // the reason; "" = the guard lets it through
	}{
		// Routes and policy decide.
		{"192.0.2.10", ""},
		{"10.0.0.1", ""},
		{"172.16.0.1", ""},
		{"192.168.255.255", ""}, // a subnet's broadcast is the admin's to route
		{"100.64.0.1", ""},
		{"100.95.255.255", ""},
		{"100.112.0.0", ""},
		{"198.18.0.1", ""},      // benchmarking
		{"192.0.1.255", ""},     // below 192.0.0.0/24
		{"192.0.3.0", ""},       // above TEST-NET-1
		{"223.255.255.255", ""}, // below multicast
		{"2001:db8::10", ""},
		{"3fff::1", ""},
		{"fd00::1", ""},
		{"::1:0:0", ""},
		{"2001:2::1", ""},                  // benchmarking
		{"2001:1::4", ""},                  // past the anycast addresses
		{"64:ff9b::c000:20a", ""},          // NAT64 of 192.0.2.10
		{"64:ff9b:1:ab::c000:20a", ""},     // local-use NAT64 of 192.0.2.10
		{"2002:c000:20a::1", ""},           // 6to4 of 192.0.2.10
		{"2001:0:c000:20a::3fff:fdf5", ""}, // Teredo: server 192.0.2.10, client 192.0.2.10

		// IPv4.
		{"0.0.0.0", "this network"},
		{"0.1.2.3", "this network"},
		{"127.0.0.1", "loopback"},
		{"127.255.255.254", "loopback"},
		{"169.254.169.254", "link-local"},
		{"192.0.0.1", "IETF protocol assignments"},
		{"192.0.0.9", "IETF protocol assignments"},
		{"192.0.0.170", "IETF protocol assignments"},
		{"192.88.99.1", "the deprecated 6to4 relay anycast"},
		{"224.0.0.1", "multicast"},
		{"239.255.255.250", "multicast"},
		{"240.0.0.1", "reserved (240.0.0.0/4)"},
		{"255.255.255.254", "reserved (240.0.0.0/4)"},
		{"255.255.255.255", "limited broadcast"},
		{"100.96.0.1", "the Warren overlay range"},
		{"100.111.255.255", "the Warren overlay range"},

		// IPv6.
		{"::", "unspecified"},
		{"::1", "loopback"},
		{"::2", "IPv4-compatible"},
		{"100::1", "discard-only"},
		{"100:0:0:1::1", "the dummy IPv6 prefix"},
		{"2001:1::1", "the PCP anycast address"},
		{"2001:1::3", "the TURN and DNS-SD SRP anycast addresses"},
		{"2001:10::1", "ORCHID (deprecated)"},
		{"2001:2f::1", "ORCHIDv2"},
		{"2001:30::1", "drone remote ID tags"},
		{"5f00::1", "SRv6 segment identifiers"},
		{"fe80::1", "link-local"},
		{"fe80::1%eth0", "an address with a zone"},
		{"2001:db8::1%eth0", "an address with a zone"},
		{"fec0::1", "site-local (deprecated)"},
		{"ff02::1", "multicast"},
		{"ff05::2", "multicast"},

		// Embedded IPv4.
		{"::ffff:127.0.0.1", "IPv4-mapped"},
		{"::ffff:192.0.2.10", "IPv4-mapped"},
		{"::127.0.0.1", "IPv4-compatible"},
		{"::169.254.169.254", "IPv4-compatible"},
		{"64:ff9b::127.0.0.1", "the NAT64 form of 127.0.0.1, loopback"},
		{"64:ff9b::169.254.169.254", "the NAT64 form of 169.254.169.254, link-local"},
		{"64:ff9b::255.255.255.255", "the NAT64 form of 255.255.255.255, limited broadcast"},
		{"64:ff9b::0.0.0.0", "the NAT64 form of 0.0.0.0, this network"},
		{"64:ff9b::100.96.0.1", "the NAT64 form of 100.96.0.1, the Warren overlay range"},
		{"64:ff9b:1::7f00:1", "the local-use NAT64 form of 127.0.0.1, loopback"},
		{"64:ff9b:1:ffff:ffff:ffff:7f00:1", "the local-use NAT64 form of 127.0.0.1, loopback"},
		{"2002:7f00:1::1", "the 6to4 form of 127.0.0.1, loopback"},
		{"2002:a9fe:a9fe::1", "the 6to4 form of 169.254.169.254, link-local"},
		{"2002:ffff:ffff::1", "the 6to4 form of 255.255.255.255, limited broadcast"},
		{"2001:0:7f00:1::1", "the Teredo server form of 127.0.0.1, loopback"},
		{"2001:0:c000:20a::80ff:fffe", "the Teredo client form of 127.0.0.1, loopback"},

		// Not addresses.
		{"", "not an address"},
	} {
		var a netip.Addr
		if tc.addr != "" {
			a = netip.MustParseAddr(tc.addr)
		}
		if got := NeverServed(a); got != tc.want {
			t.Errorf("NeverServed(%s) = %q, want %q", tc.addr, got, tc.want)
		}
	}
}

// TestCheckRoutableGuard: routes of the guard's embedded forms and of its
// newer entries are refused with one line naming the range.
func TestCheckRoutableGuard(t *testing.T) {
	refused := func(p, what string) parseTest {
		return parseTest{in: p, wantErr: p + " overlaps " + what + " and cannot be routed", kinds: []error{ErrReserved}}
	}
	tests := []parseTest{
		{in: "64:ff9b::c0a8:0/120"},     // NAT64 of 192.168.0.0/24
		{in: "64:ff9b::a00:0/104"},      // NAT64 of 10.0.0.0/8
		{in: "64:ff9b:1:1::c0a8:0/120"}, // local-use NAT64 of 192.168.0.0/24
		{in: "2002:c0a8::/32"},          // 6to4 of 192.168.0.0/16
		{in: "192.0.2.0/24"},
		{in: "198.18.0.0/15"},
		{in: "2001:db8::/32"},
		{in: "3fff::/20"},
		{in: "2001:2::/48"},

		refused("64:ff9b::7f00:1/128", "the NAT64 form of loopback (127.0.0.0/8)"),
		refused("64:ff9b::a9fe:a9fe/128", "the NAT64 form of link-local (169.254.0.0/16)"),
		refused("64:ff9b::ffff:ffff/128", "the NAT64 form of limited broadcast (255.255.255.255/32)"),
		refused("64:ff9b::/96", "the NAT64 form of this network (0.0.0.0/8)"),
		refused("64:ff9b::/64", "the NAT64 form of this network (0.0.0.0/8)"),
		refused("64:ff9b::8000:0/97", "the NAT64 form of link-local (169.254.0.0/16)"),
		refused("64:ff9b:1::/48", "the local-use NAT64 form of this network (0.0.0.0/8)"),
		refused("64:ff9b:1:2::7f00:0/104", "the local-use NAT64 form of loopback (127.0.0.0/8)"),
		refused("2002::/16", "the 6to4 form of this network (0.0.0.0/8)"),
		refused("2002:7f00::/24", "the 6to4 form of loopback (127.0.0.0/8)"),
		refused("2002:7f00:1::/48", "the 6to4 form of loopback (127.0.0.0/8)"),
		refused("2001::/32", "the Teredo server form of this network (0.0.0.0/8)"),
		refused("2001:0:7f00:1::/64", "the Teredo server form of loopback (127.0.0.0/8)"),
		// Every Teredo prefix shorter than /97 holds a refused client form.
		{in: "2001:0:c0a8:1:2:3:3f57:fdff/128"}, // server 192.168.0.1, client 192.168.2.0
		refused("2001:0:c0a8::/48", "the Teredo client form of this network (0.0.0.0/8)"),
		refused("2001:0:c000:20a::/64", "the Teredo client form of this network (0.0.0.0/8)"),
		refused("2001:0:c000:20a::80ff:fffe/128", "the Teredo client form of loopback (127.0.0.0/8)"),
		refused("::7f00:1/128", "IPv4-compatible (::/96)"),
		refused("::a9fe:a9fe/128", "IPv4-compatible (::/96)"),
		refused("::/96", "IPv4-compatible (::/96)"),
		refused("192.0.0.0/24", "IETF protocol assignments (192.0.0.0/24)"),
		refused("192.0.0.9/32", "IETF protocol assignments (192.0.0.0/24)"),
		refused("192.88.99.0/24", "the deprecated 6to4 relay anycast (192.88.99.0/24)"),
		refused("100::/64", "discard-only (100::/64)"),
		refused("100::/15", "discard-only (100::/64)"),
		refused("2001:1::/120", "the PCP anycast address (2001:1::1/128)"),
		refused("2001:1::3/128", "the TURN and DNS-SD SRP anycast addresses (2001:1::2/127)"),
		refused("2001:20::/28", "ORCHIDv2 (2001:20::/28)"),
		refused("5f00:1::/32", "SRv6 segment identifiers (5f00::/16)"),
		refused("fec0::/16", "site-local (deprecated) (fec0::/10)"),
		refused("2000::/3", "the PCP anycast address (2001:1::1/128)"),
	}
	for _, tt := range tests {
		p := netip.MustParsePrefix(tt.in)
		err := CheckRoutable(p)
		if tt.wantErr == "" {
			if err != nil {
				t.Errorf("CheckRoutable(%v): got error %q, want nil", p, err)
			}
			continue
		}
		checkErr(t, err, tt.wantErr, tt.kinds...)
	}
}

// TestGuardTable: every range of the table and every embedded form of
// every IPv4 range is refused, as addresses (its first and last) and as a
// route; an entry added to the table is tested here without a new line.
func TestGuardTable(t *testing.T) {
	for _, ex := range GuardExamples() {
		if ex.Addr.IsValid() && NeverServed(ex.Addr) == "" {
			t.Errorf("NeverServed(%v) = \"\", want %s refused", ex.Addr, ex.What)
		}
		if !ex.Prefix.IsValid() {
			continue
		}
		err := CheckRoutable(ex.Prefix)
		if err == nil {
			t.Errorf("CheckRoutable(%v) = nil, want %s refused", ex.Prefix, ex.What)
			continue
		}
		// IPv4-mapped prefixes are refused as such, before the guard.
		if want := ErrReserved; !ex.Prefix.Addr().Is4In6() && !errors.Is(err, want) {
			t.Errorf("CheckRoutable(%v) = %v, want ErrReserved", ex.Prefix, err)
		}
		if strings.ContainsAny(err.Error(), "\n\r") {
			t.Errorf("CheckRoutable(%v) = %q, want one line", ex.Prefix, err)
		}
	}
	if n := len(GuardExamples()); n < 2*(len(guardRanges)+len(embeddings)) {
		t.Errorf("GuardExamples has %d examples, too few for the table", n)
	}
}

// slowNeverServed is NeverServed the slow way from the same table: every
// range by netip's Contains, the IPv4 address of each embedded form read
// bit by bit.
func slowNeverServed(a netip.Addr) bool {
	if !a.IsValid() || a.Zone() != "" {
		return true
	}
	inTable := func(a netip.Addr) bool {
		for _, r := range GuardTable() {
			if r.Prefix.Contains(a) {
				return true
			}
		}
		return false
	}
	if inTable(a) {
		return true
	}
	for _, e := range GuardEmbeddings() {
		if !e.Prefix.Contains(a) {
			continue
		}
		var v4 [4]byte
		for i := range 32 {
			bit := AddrBit(a, e.At*8+i)
			if e.Xor&(0x80>>(i%8)) != 0 {
				bit = !bit
			}
			if bit {
				v4[i/8] |= 0x80 >> (i % 8)
			}
		}
		if inTable(netip.AddrFrom4(v4)) {
			return true
		}
	}
	return false
}

// withBits returns a with its bits from i on taken from b (same family).
func withBits(a netip.Addr, i int, b netip.Addr) netip.Addr {
	x, y := a.As16(), b.As16()
	off := 0
	if a.Is4() {
		off = 96
	}
	for j := off + i; j < 128; j++ {
		m := byte(0x80) >> (j % 8)
		x[j/8] = x[j/8]&^m | y[j/8]&m
	}
	if a.Is4() {
		return netip.AddrFrom16(x).Unmap()
	}
	return netip.AddrFrom16(x)
}

// slowWitness looks for an address of p the guard refuses, the slow way:
// for each range of the table, and each embedded form of each IPv4 range,
// it keeps p's bits and takes the rest from the range's first address.
func slowWitness(p netip.Prefix) (netip.Addr, bool) {
	var targets []netip.Addr
	for _, r := range GuardTable() {
		targets = append(targets, r.Prefix.Addr())
		if !r.Prefix.Addr().Is4() {
			continue
		}
		for _, e := range GuardEmbeddings() {
			b := e.Prefix.Addr().As16()
			v4 := r.Prefix.Addr().As4()
			for i := range 4 {
				b[e.At+i] = v4[i] ^ e.Xor
			}
			targets = append(targets, netip.AddrFrom16(b))
		}
	}
	for _, t := range targets {
		if t.Is4() != p.Addr().Is4() {
			continue
		}
		if c := withBits(p.Addr(), p.Bits(), t); p.Contains(c) && slowNeverServed(c) {
			return c, true
		}
	}
	return netip.Addr{}, false
}

// FuzzGuard checks the guard against the slow reference: NeverServed
// refuses what slowNeverServed refuses; CheckRoutable refuses a prefix
// exactly when it holds an address the reference refuses (so a route the
// coordinator accepts holds no address a connector refuses: its first,
// last and some fuzzed addresses are checked too); an address's host
// route is refused exactly when the address is.
func FuzzGuard(f *testing.F) {
	for _, ex := range GuardExamples() {
		if ex.Prefix.IsValid() {
			f.Add(ex.Prefix.Addr().AsSlice(), ex.Prefix.Bits(), []byte{1, 2, 3})
		}
	}
	for _, s := range []string{"192.168.0.0/24", "64:ff9b::c0a8:0/120", "2002:c0a8::/32", "2001:0:c0a8:1:2:3:3f57:fdff/128", "2001:db8::/32", "::1:0:0/128"} {
		p := netip.MustParsePrefix(s)
		f.Add(p.Addr().AsSlice(), p.Bits(), []byte{0xff, 0, 0x7f})
	}
	f.Fuzz(func(t *testing.T, b []byte, bits int, probes []byte) {
		a, ok := netip.AddrFromSlice(b)
		if !ok {
			return
		}
		if got, want := NeverServed(a) != "", slowNeverServed(a); got != want {
			t.Fatalf("NeverServed(%v) = %q, the reference says refused = %v", a, NeverServed(a), want)
		}
		if !a.Is4In6() {
			host := netip.PrefixFrom(a, a.BitLen())
			if got, want := CheckRoutable(host) != nil, NeverServed(a) != ""; got != want {
				t.Fatalf("CheckRoutable(%v) = %v, but NeverServed(%v) = %q", host, CheckRoutable(host), a, NeverServed(a))
			}
		}
		if bits < 0 || bits > a.BitLen() {
			return
		}
		p, ok := Canonical(netip.PrefixFrom(a, bits))
		if !ok || p.Addr().Is4In6() {
			return
		}
		err := CheckRoutable(p)
		if err != nil && !errors.Is(err, ErrReserved) {
			t.Fatalf("CheckRoutable(%v) = %v, want nil or ErrReserved", p, err)
		}
		if p.Bits() == 0 {
			if err == nil {
				t.Fatalf("CheckRoutable(%v) = nil, want a default route refused", p)
			}
			return
		}
		w, refused := slowWitness(p)
		switch {
		case err != nil && !refused:
			t.Fatalf("CheckRoutable(%v) = %v, but the reference finds no refused address in it", p, err)
		case err == nil && refused:
			t.Fatalf("CheckRoutable(%v) = nil, but %v in it is refused: %s", p, w, NeverServed(w))
		case err != nil:
			return
		}
		// Accepted: no address in it is refused. Probe its ends and
		// addresses made of the fuzzed bytes.
		last := withBits(p.Addr(), p.Bits(), netip.AddrFrom16([16]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}))
		check := []netip.Addr{p.Addr(), last}
		for len(probes) >= 4 && len(check) < 20 {
			var x [16]byte
			copy(x[:], probes)
			if p.Addr().Is4() {
				x = [16]byte{10: 0xff, 11: 0xff, 12: probes[0], 13: probes[1], 14: probes[2], 15: probes[3]}
			}
			probes = probes[4:]
			check = append(check, withBits(p.Addr(), p.Bits(), netip.AddrFrom16(x).Unmap()))
		}
		for _, c := range check {
			if !p.Contains(c) {
				t.Fatalf("probe %v is not in %v", c, p)
			}
			if slowNeverServed(c) || NeverServed(c) != "" {
				t.Fatalf("CheckRoutable(%v) = nil, but %v in it is refused: %s", p, c, NeverServed(c))
			}
		}
	})
}
