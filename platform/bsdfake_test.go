package platform

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"syscall"
)

// fakeKernel is the macOS kernel as bsdKernel sees it, in memory: it
// decodes the routing messages and ioctl requests the darwin Router sends,
// byte by byte at the offsets of macOS's headers, applies them as XNU
// does (a route is keyed by destination and netmask whoever added it;
// addresses by address), and answers dumps in the kernel's form. ops
// records every change it was asked for, in order.
type fakeKernel struct {
	links  map[string]*fakeLink
	routes []fakeRoute
	ops    []string
	// fail makes the change whose op string it names fail with the error.
	fail map[string]error
}

type fakeLink struct {
	index int
	mtu   int
	up    bool
	addrs []netip.Prefix
}

// fakeRoute is one route in the fake's table.
type fakeRoute struct {
	dst    netip.Prefix
	index  int // the interface it goes out of
	flags  uint32
	gwAddr netip.Addr // an IP gateway, or
	gwLink int        // the interface's link address
}

func (k *fakeKernel) linkByIndex(index int) string {
	for name, l := range k.links {
		if l.index == index {
			return name
		}
	}
	return fmt.Sprintf("if%d", index)
}

func (k *fakeKernel) link(name string) (bsdLink, error) {
	l, ok := k.links[name]
	if !ok {
		return bsdLink{}, fmt.Errorf("%w: %s", errNoLink, name)
	}
	return bsdLink{Index: l.index, MTU: l.mtu, Up: l.up}, nil
}

func (k *fakeKernel) addrs(name string) ([]netip.Prefix, error) {
	l, ok := k.links[name]
	if !ok {
		return nil, fmt.Errorf("%w: %s", errNoLink, name)
	}
	return slices.Clone(l.addrs), nil
}

func (k *fakeKernel) do(op string) error {
	k.ops = append(k.ops, op)
	return k.fail[op]
}

func (k *fakeKernel) setMTU(name string, mtu int) error {
	if err := k.do(fmt.Sprintf("mtu %s %d", name, mtu)); err != nil {
		return err
	}
	k.links[name].mtu = mtu
	return nil
}

func (k *fakeKernel) setUp(name string) error {
	if err := k.do("up " + name); err != nil {
		return err
	}
	k.links[name].up = true
	return nil
}

// rib encodes the table as NET_RT_DUMP does: one RTM_GET per route, the
// netmask in the kernel's short form.
func (k *fakeKernel) rib() ([]byte, error) {
	var b []byte
	for _, r := range k.routes {
		b = append(b, kernelRouteMsg(r)...)
	}
	return b, nil
}

// route decodes and applies one routing message.
func (k *fakeKernel) route(m []byte) error {
	if len(m) < 92 || int(binary.LittleEndian.Uint16(m)) != len(m) || m[2] != 5 {
		return fmt.Errorf("fake kernel: malformed routing message % x", m)
	}
	typ := m[3]
	index := int(binary.LittleEndian.Uint16(m[4:]))
	flags := binary.LittleEndian.Uint32(m[8:])
	addrs := binary.LittleEndian.Uint32(m[12:])
	b := m[92:]
	var sas [8][]byte
	for i := range 8 {
		if addrs&(1<<i) == 0 {
			continue
		}
		l := int(b[0])
		sas[i] = b[:l]
		b = b[max(4, (l+3)&^3):]
	}
	if len(b) != 0 {
		return fmt.Errorf("fake kernel: %d bytes after the sockaddrs", len(b))
	}
	dst, ok := fakeSockaddrAddr(sas[0])
	if !ok {
		return fmt.Errorf("fake kernel: destination % x", sas[0])
	}
	bits := dst.BitLen()
	if flags&rtfHost == 0 {
		mask, ok := fakeSockaddrAddr(sas[2])
		if !ok {
			return fmt.Errorf("fake kernel: network route without a netmask")
		}
		bits = fakeMaskBits(mask)
	}
	p := netip.PrefixFrom(dst, bits)
	gw := sas[1]
	if len(gw) < 8 || gw[1] != 18 || int(binary.LittleEndian.Uint16(gw[2:])) != index {
		return fmt.Errorf("fake kernel: gateway % x is not the link address of interface %d", gw, index)
	}
	name := string(gw[8 : 8+int(gw[5])])
	at := slices.IndexFunc(k.routes, func(r fakeRoute) bool { return r.dst == p })
	switch typ {
	case 1:
		if flags != rtfUp|rtfStatic|rtfProto1 && flags != rtfUp|rtfStatic|rtfProto1|rtfHost {
			return fmt.Errorf("fake kernel: add with flags %#x", flags)
		}
		if err := k.do(fmt.Sprintf("route add %v -interface %s", p, name)); err != nil {
			return err
		}
		if at >= 0 {
			return syscall.EEXIST
		}
		k.routes = append(k.routes, fakeRoute{dst: p, index: index, flags: flags, gwLink: index})
	case 2:
		if err := k.do(fmt.Sprintf("route delete %v", p)); err != nil {
			return err
		}
		if at < 0 {
			return syscall.ESRCH
		}
		k.routes = slices.Delete(k.routes, at, at+1)
	default:
		return fmt.Errorf("fake kernel: routing message type %d", typ)
	}
	return nil
}

// ioctl decodes and applies one address request.
func (k *fakeKernel) ioctl(family int, req uint32, arg []byte) error {
	if size := int(req>>16) & 0x1fff; size != len(arg) {
		return fmt.Errorf("fake kernel: ioctl %#x with %d bytes, it takes %d", req, len(arg), size)
	}
	name, _, _ := strings.Cut(string(arg[:16]), "\x00")
	l, ok := k.links[name]
	if !ok {
		return syscall.ENXIO
	}
	addr, _ := fakeSockaddrAddr(arg[16:])
	has := slices.IndexFunc(l.addrs, func(p netip.Prefix) bool { return p.Addr() == addr })
	switch {
	case req == 0x8040691a && family == 2: // SIOCAIFADDR
		dst, _ := fakeSockaddrAddr(arg[32:])
		mask, _ := fakeSockaddrAddr(arg[48:])
		if dst != addr {
			return fmt.Errorf("fake kernel: utun address %v with destination %v", addr, dst)
		}
		p := netip.PrefixFrom(addr, fakeMaskBits(mask))
		if err := k.do(fmt.Sprintf("ifconfig %s inet %v %v alias", name, p, dst)); err != nil {
			return err
		}
		if has >= 0 { // XNU replaces an address it has
			l.addrs[has] = p
			return nil
		}
		l.addrs = append(l.addrs, p)
	case req == 0x8080691a && family == 30: // SIOCAIFADDR_IN6
		mask, _ := fakeSockaddrAddr(arg[72:])
		if flags := binary.LittleEndian.Uint32(arg[100:]); flags != 0x20 {
			return fmt.Errorf("fake kernel: in6 flags %#x, want IN6_IFF_NODAD", flags)
		}
		if v, p := binary.LittleEndian.Uint32(arg[120:]), binary.LittleEndian.Uint32(arg[124:]); v != 0xffffffff || p != 0xffffffff {
			return fmt.Errorf("fake kernel: in6 lifetimes %d/%d, want infinite", v, p)
		}
		p := netip.PrefixFrom(addr, fakeMaskBits(mask))
		if err := k.do(fmt.Sprintf("ifconfig %s inet6 %v alias", name, p)); err != nil {
			return err
		}
		if has >= 0 {
			if l.addrs[has] != p { // KAME refuses to change a prefix length
				return syscall.EINVAL
			}
			return nil
		}
		l.addrs = append(l.addrs, p)
	case req == 0x80206919 && family == 2, req == 0x81206919 && family == 30: // SIOCDIFADDR(_IN6)
		if err := k.do(fmt.Sprintf("ifconfig %s %v delete", name, addr)); err != nil {
			return err
		}
		if has < 0 {
			return syscall.EADDRNOTAVAIL
		}
		l.addrs = slices.Delete(l.addrs, has, has+1)
	default:
		return fmt.Errorf("fake kernel: ioctl %#x on a family %d socket", req, family)
	}
	return nil
}

// fakeSockaddrAddr reads a full sockaddr_in (family 2, address at 4) or
// sockaddr_in6 (family 30, address at 8).
func fakeSockaddrAddr(sa []byte) (netip.Addr, bool) {
	switch {
	case len(sa) >= 16 && sa[0] == 16 && sa[1] == 2:
		return netip.AddrFrom4([4]byte(sa[4:8])), true
	case len(sa) >= 28 && sa[0] == 28 && sa[1] == 30:
		return netip.AddrFrom16([16]byte(sa[8:24])), true
	}
	return netip.Addr{}, false
}

func fakeMaskBits(m netip.Addr) int {
	bits := 0
	for _, b := range m.AsSlice() {
		for i := 7; i >= 0 && b&(1<<i) != 0; i-- {
			bits++
		}
	}
	return bits
}

// kernelRouteMsg encodes r as an RTM_GET of a dump, field by field at the
// offsets of macOS's struct rt_msghdr: msglen 0, version 2, type 3, index
// 4, flags 8, addrs 12, then rt_metrics to 92. Sockaddrs take multiples
// of 4 bytes; the netmask is in the kernel's short form (length up to its
// last non-zero byte, family 0), and a host route has none.
func kernelRouteMsg(r fakeRoute) []byte {
	h := make([]byte, 92)
	h[2], h[3] = 5, 4
	binary.LittleEndian.PutUint16(h[4:], uint16(r.index))
	binary.LittleEndian.PutUint32(h[8:], r.flags)
	addrs := uint32(0x1 | 0x2)
	host := r.dst.IsSingleIP()
	if !host {
		addrs |= 0x4
	}
	binary.LittleEndian.PutUint32(h[12:], addrs)
	b := append(h, fakeSockaddr(r.dst.Addr())...)
	if r.gwAddr.IsValid() {
		b = append(b, fakeSockaddr(r.gwAddr)...)
	} else {
		dl := make([]byte, 20)
		dl[0], dl[1] = 20, 18
		binary.LittleEndian.PutUint16(dl[2:], uint16(r.gwLink))
		b = append(b, dl...)
	}
	if !host {
		off := 4
		if r.dst.Addr().Is6() {
			off = 8
		}
		mask := maskOf(r.dst).AsSlice()
		n := len(mask)
		for n > 0 && mask[n-1] == 0 {
			n--
		}
		var sa []byte
		if n == 0 {
			sa = make([]byte, 4) // sa_len 0: the /0 mask
		} else {
			sa = make([]byte, (off+n+3)&^3)
			sa[0] = byte(off + n)
			copy(sa[off:], mask[:n])
		}
		b = append(b, sa...)
	}
	binary.LittleEndian.PutUint16(b, uint16(len(b)))
	return b
}

// fakeSockaddr encodes a full sockaddr_in or sockaddr_in6 (28 bytes, a
// multiple of 4 already), a link-local IPv6 address with its scope
// embedded as XNU keeps it.
func fakeSockaddr(a netip.Addr) []byte {
	if a.Is4() {
		sa := make([]byte, 16)
		sa[0], sa[1] = 16, 2
		a4 := a.As4()
		copy(sa[4:], a4[:])
		return sa
	}
	sa := make([]byte, 28)
	sa[0], sa[1] = 28, 30
	a16 := a.As16()
	if a.IsLinkLocalUnicast() {
		a16[3] = 4 // the scope: interface 4
	}
	copy(sa[8:], a16[:])
	return sa
}

// table renders the fake's routes and addresses for comparison, one line
// each, sorted.
func (k *fakeKernel) table() []string {
	var out []string
	for name, l := range k.links {
		for _, a := range l.addrs {
			out = append(out, fmt.Sprintf("addr %s %v", name, a))
		}
	}
	for _, r := range k.routes {
		via := "-interface " + k.linkByIndex(r.gwLink)
		if r.gwAddr.IsValid() {
			via = "gw " + r.gwAddr.String() + " on " + k.linkByIndex(r.index)
		}
		out = append(out, fmt.Sprintf("route %v %s flags %#x", r.dst, via, r.flags))
	}
	slices.Sort(out)
	return out
}
