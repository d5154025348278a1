package split

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/warrennet/warren/routes"
)

// Local is Compute's answer for one machine, which sits on LANs of its own
// (the prefixes of its directly connected networks) that tunnelled space
// may overlap.
type Local struct {
	// Result is what Compute returns with Guards.
	Result Result
	// Guards are the guards Result was computed with: those given, then,
	// when the LAN wins, each LAN. Explain needs the same ones to agree
	// with Result.
	Guards []Guard
	// Install is what to route into the tunnel, sorted canonically and
	// without duplicates: Result's tunnelled prefixes and, where one of
	// them covers a whole LAN, that LAN's two halves, which beat the LAN's
	// connected route (as specific as the LAN itself).
	Install []netip.Prefix
	// Warnings say, one line each, which routes overlap which LANs and
	// which side wins. They are this machine's; Result.Warnings are the
	// admin's.
	Warnings []string
}

// lanGuardReason is the Reason of the guard each LAN becomes when the LAN
// wins.
const lanGuardReason = "this machine's LAN, which wins (warren set --lan-wins=false to let the tunnel win)"

// ComputeLocal runs Compute for a machine on the given LANs and decides
// where a LAN and tunnelled space overlap. By default the tunnel wins (a
// café LAN must not capture an office route): Install adds the halves of
// every LAN a tunnelled prefix covers, and each overlapping route gets a
// warning; a LAN of one address (a point-to-point peer) has no halves and
// keeps its address. With lanWins every LAN is a guard instead, so none of
// it is tunnelled, and each route bypassed on a LAN gets a warning.
//
// lans are canonicalized like Compute's inputs (invalid ones are ignored).
// The result does not alias the arguments.
func ComputeLocal(p Policy, rs []Route, guards []Guard, lans []netip.Prefix, lanWins bool) Local {
	var ls []netip.Prefix
	for _, l := range lans {
		if c, ok := routes.Canonical(l); ok {
			ls = append(ls, c)
		}
	}
	gs := slices.Clone(guards)
	if lanWins {
		for _, l := range ls {
			gs = append(gs, Guard{Prefix: l, Reason: lanGuardReason})
		}
	}
	res := Compute(p, rs, gs)
	install, warnings := winOverLANs(res, ls)
	if lanWins {
		// A bypassed decision has one route, but a route may be bypassed
		// in many parts (around a gateway guard, say): warn once per route.
		warned := map[[2]netip.Prefix]bool{}
		for _, d := range res.Bypass {
			for _, l := range ls {
				if d.Prefix.Overlaps(l) && !warned[[2]netip.Prefix{d.Route, l}] {
					warned[[2]netip.Prefix{d.Route, l}] = true
					warnings = append(warnings, fmt.Sprintf("route %v via %s overlaps this machine's LAN %v: the LAN wins (lan-wins is set)", d.Route, d.Connector, l))
				}
			}
		}
	}
	return Local{Result: res, Guards: gs, Install: install, Warnings: warnings}
}

// winOverLANs returns the routes to install so that tunnelled prefixes
// win over overlapping local LANs, and a warning for each overlap. A
// connected LAN route is as specific as the LAN, so where a tunnelled
// prefix covers a whole LAN the LAN's two halves are installed as well.
// They need no guards taken out: a guard never lies in a tunnelled
// prefix, so a default gateway on the LAN has already cut the tunnelled
// space into parts more specific than the LAN, and none covers it.
func winOverLANs(res Result, lans []netip.Prefix) ([]netip.Prefix, []string) {
	install := res.TunnelPrefixes()
	var warnings []string
	warned := map[[2]netip.Prefix]bool{}
	for _, d := range res.Tunnel {
		for _, l := range lans {
			if !d.Prefix.Overlaps(l) {
				continue
			}
			for _, r := range d.Routes {
				if r.Overlaps(l) && !warned[[2]netip.Prefix{r, l}] {
					warned[[2]netip.Prefix{r, l}] = true
					warnings = append(warnings, fmt.Sprintf("route %v via %s overlaps this machine's LAN %v: the tunnel wins (warren set --lan-wins lets the LAN win)", r, d.Connector, l))
				}
			}
			if d.Prefix.Bits() > l.Bits() || l.Bits() == l.Addr().BitLen() {
				continue // more specific already, or nothing to split
			}
			lo, hi := routes.Halves(l)
			install = append(install, lo, hi)
		}
	}
	return routes.SortUnique(install), warnings
}
