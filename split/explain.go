package split

import (
	"fmt"
	"net/netip"
)

// Explanation says what happens to one address and why.
type Explanation struct {
	IP        netip.Addr
	Tunnelled bool
	// Route is the route that covers IP by longest prefix match, or nil.
	Route *Route
	// Entry is the split entry that matched IP, the most specific one when
	// several do: the admin exclude that bypasses it, the include that
	// admits it, or, for an address tunnelled in exclude mode, the builtin
	// exclude its route was carved out of. Nil when none applies.
	Entry *Entry
	// Guard is the guard that keeps IP out of the tunnel, or nil.
	Guard *Guard
	// Reason says it all in one line, e.g. "192.168.0.200 is bypassed:
	// excluded by 192.168.0.128/25 (printers), which shadows route
	// 192.168.0.0/24 via office".
	Reason string
}

// Explain tells what Compute decides for ip with the same arguments, and
// why. An IPv4-mapped ip is read as IPv4.
func Explain(p Policy, routes []Route, guards []Guard, ip netip.Addr) Explanation {
	ip = ip.Unmap()
	ex := Explanation{IP: ip}
	if !ip.IsValid() {
		ex.Reason = "invalid address"
		return ex
	}
	in := prepare(p, routes, guards)
	route := longest(in.routes, ip, func(r Route) netip.Prefix { return r.Prefix })
	guard := longest(in.guards, ip, func(g Guard) netip.Prefix { return g.Prefix })
	entry := longest(in.active, ip, entryPrefix)
	ex.Route, ex.Guard = route, guard
	switch {
	case guard != nil:
		ex.Reason = fmt.Sprintf("%v is not tunnelled: %s", ip, guardPhrase(*guard))
	case route == nil:
		ex.Reason = fmt.Sprintf("%v is not tunnelled: no route covers it", ip)
	case in.include && entry == nil:
		ex.Reason = fmt.Sprintf("%v is bypassed: not in include list (%v)", ip, route)
	case in.include:
		ex.Tunnelled, ex.Entry = true, entry
		ex.Reason = fmt.Sprintf("%v is tunnelled: %v; included by %v", ip, route, entry)
	case entry != nil:
		ex.Entry = entry
		ex.Reason = fmt.Sprintf("%v is bypassed: excluded by %v, which shadows %v", ip, entry, route)
	default:
		ex.Tunnelled = true
		ex.Reason = fmt.Sprintf("%v is tunnelled: %v", ip, route)
		if b := longest(in.builtins, ip, entryPrefix); b != nil {
			ex.Entry = b
			ex.Reason += fmt.Sprintf("; carved out of builtin exclude %v", b)
		}
	}
	return ex
}

func entryPrefix(e Entry) netip.Prefix { return e.Prefix }

// longest returns a copy of the first of the most specific values whose
// prefix contains ip, or nil.
func longest[T any](vs []T, ip netip.Addr, prefix func(T) netip.Prefix) *T {
	best := -1
	for i, v := range vs {
		p := prefix(v)
		if p.Contains(ip) && (best < 0 || p.Bits() > prefix(vs[best]).Bits()) {
			best = i
		}
	}
	if best < 0 {
		return nil
	}
	v := vs[best]
	return &v
}
