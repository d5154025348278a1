package platform

import (
	"cmp"
	"errors"
	"log/slog"
	"net/netip"
	"slices"
	"strconv"

	"github.com/warrennet/warren/routes"
)

// This file holds the OS-independent half of Set: the desired state a
// Config asks for, the plan that turns the installed state into it, and the
// loop that reads, plans and applies through a netState. The OS-specific
// files implement netState.

// route is one route Warren installs through its interface: a destination
// and the metric the kernel reports for it.
type route struct {
	Prefix netip.Prefix
	Metric uint32
}

func (r route) String() string {
	return r.Prefix.String() + " metric " + strconv.FormatUint(uint64(r.Metric), 10)
}

func compareRoutes(a, b route) int {
	if c := routes.ComparePrefixes(a.Prefix, b.Prefix); c != 0 {
		return c
	}
	return cmp.Compare(a.Metric, b.Metric)
}

// state is the part of an interface's OS state that Warren owns: its
// global addresses and the routes marked as Warren's.
type state struct {
	Addrs  []netip.Prefix
	Routes []route
}

// ipv6DefaultMetric is the metric Linux gives an IPv6 route added with
// metric 0 (IP6_RT_PRIO_USER); it reports the route with this metric.
const ipv6DefaultMetric = 1024

// kernelMetric is the metric the kernel reports for a route to p added
// with metric m.
func kernelMetric(p netip.Prefix, m uint32) uint32 {
	if m == 0 && p.Addr().Is6() {
		return ipv6DefaultMetric
	}
	return m
}

// desired returns the state cfg asks for, sorted and free of duplicates.
// A nil cfg asks for nothing.
func desired(cfg *Config) state {
	var s state
	if cfg == nil {
		return s
	}
	s.Addrs = slices.Clone(cfg.Addresses)
	routes.SortPrefixes(s.Addrs)
	s.Addrs = slices.Compact(s.Addrs)
	for _, p := range cfg.Routes {
		s.Routes = append(s.Routes, route{Prefix: p, Metric: kernelMetric(p, cfg.Metric)})
	}
	slices.SortFunc(s.Routes, compareRoutes)
	s.Routes = slices.Compact(s.Routes)
	return s
}

// plan is what turns one state into another. apply performs it in field
// order: DelAddrsFirst must go before the additions (see diff), and everything
// is added before anything is deleted, so traffic that has a route keeps one
// throughout.
type plan struct {
	DelAddrsFirst []netip.Prefix
	AddAddrs      []netip.Prefix
	AddRoutes     []route
	DelRoutes     []route
	DelAddrs      []netip.Prefix
}

func (p plan) empty() bool {
	return len(p.DelAddrsFirst)+len(p.AddAddrs)+len(p.AddRoutes)+len(p.DelRoutes)+len(p.DelAddrs) == 0
}

func (p plan) deletes() bool {
	return len(p.DelAddrsFirst)+len(p.DelRoutes)+len(p.DelAddrs) > 0
}

// diff plans the changes from have to want. Routes are told apart by
// prefix and metric, so a metric change adds the route at the new metric
// before it deletes the old one. An IPv6 address changing only its prefix
// length is the one thing deleted first: the kernel keys IPv6 addresses by
// address alone and would refuse the new one while the old one exists.
func diff(have, want state) plan {
	var p plan
	add, del := routes.Diff(have.Addrs, want.Addrs)
	for _, d := range del {
		if d.Addr().Is6() && slices.ContainsFunc(add, func(a netip.Prefix) bool { return a.Addr() == d.Addr() }) {
			p.DelAddrsFirst = append(p.DelAddrsFirst, d)
		} else {
			p.DelAddrs = append(p.DelAddrs, d)
		}
	}
	p.AddAddrs = add

	// routes.Diff compares prefixes; compare per metric.
	byMetric := func(rs []route) map[uint32][]netip.Prefix {
		m := make(map[uint32][]netip.Prefix)
		for _, r := range rs {
			m[r.Metric] = append(m[r.Metric], r.Prefix)
		}
		return m
	}
	h, w := byMetric(have.Routes), byMetric(want.Routes)
	metrics := make(map[uint32]bool)
	for m := range h {
		metrics[m] = true
	}
	for m := range w {
		metrics[m] = true
	}
	for m := range metrics {
		add, del := routes.Diff(h[m], w[m])
		for _, a := range add {
			p.AddRoutes = append(p.AddRoutes, route{Prefix: a, Metric: m})
		}
		for _, d := range del {
			p.DelRoutes = append(p.DelRoutes, route{Prefix: d, Metric: m})
		}
	}
	slices.SortFunc(p.AddRoutes, compareRoutes)
	slices.SortFunc(p.DelRoutes, compareRoutes)
	return p
}

// netState is one interface's OS state as reconcile sees it. The
// implementations report only what Warren owns and treat removing
// something already gone as success.
type netState interface {
	// read returns the installed state.
	read() (state, error)
	addAddr(p netip.Prefix) error
	delAddr(p netip.Prefix) error
	addRoute(r route) error
	delRoute(r route) error
}

// maxPasses bounds reconcile's read-plan-apply passes. A second pass runs
// only when the first deleted something and failed at nothing: deleting
// can take more with it than asked (Linux drops an IPv4 primary address's
// secondaries with it unless promote_secondaries is set), and the second
// pass puts back what went.
const maxPasses = 2

// reconcile makes ns match want and returns every error joined. When the
// installed state already matches, it only reads.
func reconcile(log *slog.Logger, ns netState, want state) error {
	var errs []error
	for range maxPasses {
		have, err := ns.read()
		if err != nil {
			errs = append(errs, err)
			break
		}
		p := diff(have, want)
		if p.empty() {
			break
		}
		perrs := apply(ns, p)
		log.Info("platform state applied",
			"addrs_added", len(p.AddAddrs), "addrs_removed", len(p.DelAddrsFirst)+len(p.DelAddrs),
			"routes_added", len(p.AddRoutes), "routes_removed", len(p.DelRoutes), "errors", len(perrs))
		log.Debug("platform plan", "plan", p)
		errs = append(errs, perrs...)
		if len(perrs) > 0 || !p.deletes() {
			break
		}
	}
	return errors.Join(errs...)
}

// apply performs p in order and keeps going past failures.
func apply(ns netState, p plan) []error {
	var errs []error
	note := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	for _, a := range p.DelAddrsFirst {
		note(ns.delAddr(a))
	}
	for _, a := range p.AddAddrs {
		note(ns.addAddr(a))
	}
	for _, r := range p.AddRoutes {
		note(ns.addRoute(r))
	}
	for _, r := range p.DelRoutes {
		note(ns.delRoute(r))
	}
	for _, a := range p.DelAddrs {
		note(ns.delAddr(a))
	}
	return errs
}
