package coord

import (
	"cmp"
	"context"
	"fmt"
	"net/netip"
	"net/url"
	"slices"

	"github.com/warrennet/warren/overlay/wire"
	"github.com/warrennet/warren/routes"
	"github.com/warrennet/warren/split"
)

// SplitPolicy returns the split-tunnel policy.
func (c *Coordinator) SplitPolicy() wire.SplitPolicy { return c.snap.Load().split }

// SetSplitMode switches the mode. Both lists are kept.
func (c *Coordinator) SetSplitMode(ctx context.Context, mode wire.SplitMode) (wire.SplitEditResponse, error) {
	if mode != wire.SplitInclude && mode != wire.SplitExclude {
		return wire.SplitEditResponse{}, errorf(wire.CodeInvalid, "split mode %q is not one of: include, exclude", string(mode))
	}
	return c.editSplit(ctx, func(p *wire.SplitPolicy) error {
		p.Mode = mode
		return nil
	})
}

// AddSplitEntry adds a prefix to the list of the current mode.
func (c *Coordinator) AddSplitEntry(ctx context.Context, req wire.SplitEntryRequest) (wire.SplitEditResponse, error) {
	pfx, err := routes.ParsePrefix(req.Prefix)
	if err != nil {
		return wire.SplitEditResponse{}, invalid(err)
	}
	if err := wire.ValidateComment(req.Comment); err != nil {
		return wire.SplitEditResponse{}, invalid(err)
	}
	return c.editSplit(ctx, func(p *wire.SplitPolicy) error {
		list := listOf(p)
		if i := slices.IndexFunc(*list, func(e wire.SplitEntry) bool { return e.Prefix == pfx }); i >= 0 {
			what := ""
			if (*list)[i].Builtin {
				what = " (a default entry)"
			}
			return errorf(wire.CodeConflict, "%s is already in the %s list%s", pfx, p.Mode, what)
		}
		*list = append(*list, wire.SplitEntry{Prefix: pfx, Comment: req.Comment})
		slices.SortFunc(*list, func(a, b wire.SplitEntry) int { return routes.ComparePrefixes(a.Prefix, b.Prefix) })
		return nil
	})
}

// RemoveSplitEntry removes a prefix from the list of the current mode.
func (c *Coordinator) RemoveSplitEntry(ctx context.Context, prefix string) (wire.SplitEditResponse, error) {
	pfx, err := routes.ParsePrefix(prefix)
	if err != nil {
		return wire.SplitEditResponse{}, invalid(err)
	}
	return c.editSplit(ctx, func(p *wire.SplitPolicy) error {
		list := listOf(p)
		i := slices.IndexFunc(*list, func(e wire.SplitEntry) bool { return e.Prefix == pfx })
		if i < 0 {
			return errorf(wire.CodeNotFound, "%s is not in the %s list (see: warren split ls)", pfx, p.Mode)
		}
		*list = slices.Delete(*list, i, i+1)
		return nil
	})
}

// ResetSplit puts the default policy back: exclude mode, the default
// exclude list, an empty include list.
func (c *Coordinator) ResetSplit(ctx context.Context) (wire.SplitEditResponse, error) {
	return c.editSplit(ctx, func(p *wire.SplitPolicy) error {
		*p = DefaultSplitPolicy()
		return nil
	})
}

func listOf(p *wire.SplitPolicy) *[]wire.SplitEntry {
	if p.Mode == wire.SplitInclude {
		return &p.Include
	}
	return &p.Exclude
}

// editSplit applies edit to a copy of the policy, validates, stores and
// publishes it, and returns it with the warnings it causes.
func (c *Coordinator) editSplit(ctx context.Context, edit func(*wire.SplitPolicy) error) (wire.SplitEditResponse, error) {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	s := c.snap.Load()
	p := s.split
	p.Include = slices.Clone(p.Include)
	p.Exclude = slices.Clone(p.Exclude)
	if err := edit(&p); err != nil {
		return wire.SplitEditResponse{}, err
	}
	if err := splitPolicy(p).Validate(); err != nil {
		return wire.SplitEditResponse{}, invalid(err)
	}
	version, err := c.store.SetSplit(ctx, p)
	if err != nil {
		return wire.SplitEditResponse{}, fmt.Errorf("storing split policy: %w", err)
	}
	next, err := s.with(version, nil, nil, nil, &p, nil)
	if err != nil {
		return wire.SplitEditResponse{}, err
	}
	c.publish(next)
	c.log.Info("split policy changed", "mode", p.Mode, "include", len(p.Include), "exclude", len(p.Exclude))
	return wire.SplitEditResponse{Policy: p, Warnings: c.computeSplit(next).Warnings}, nil
}

// EffectiveSplit says what a client would tunnel now, and why: the split
// computation a client runs, over every route, with the coordinator's and
// the relay's addresses as guards (a client adds its own gateway).
func (c *Coordinator) EffectiveSplit() wire.SplitEffective {
	s := c.snap.Load()
	res := c.computeSplit(s)
	out := wire.SplitEffective{Mode: s.split.Mode, Tunnel: []wire.SplitDecision{}, Bypass: []wire.SplitDecision{}, Warnings: res.Warnings}
	for _, d := range res.Tunnel {
		out.Tunnel = append(out.Tunnel, wire.SplitDecision{Prefix: d.Prefix, Connector: d.Connector, Reason: d.Reason})
	}
	for _, d := range res.Bypass {
		out.Bypass = append(out.Bypass, wire.SplitDecision{Prefix: d.Prefix, Connector: d.Connector, Reason: d.Reason})
	}
	if s.split.Mode == wire.SplitInclude && len(s.split.Include) == 0 {
		out.Warnings = append(out.Warnings, "include mode with an empty include list tunnels nothing")
	}
	return out
}

func (c *Coordinator) computeSplit(s *snapshot) split.Result {
	rs := make([]split.Route, len(s.routes))
	for i, r := range s.routes {
		rs[i] = split.Route{Prefix: r.Prefix, Connector: r.Connector}
	}
	var guards []split.Guard
	if u, err := url.Parse(c.url); err == nil {
		if a, err := netip.ParseAddr(u.Hostname()); err == nil {
			guards = append(guards, split.Guard{Prefix: netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), Reason: "coordinator address"})
		}
	}
	if ap, err := netip.ParseAddrPort(c.relay); err == nil {
		a := ap.Addr().Unmap()
		guards = append(guards, split.Guard{Prefix: netip.PrefixFrom(a, a.BitLen()), Reason: "relay address"})
	}
	slices.SortFunc(guards, func(a, b split.Guard) int { return cmp.Compare(a.Reason, b.Reason) })
	return split.Compute(splitPolicy(s.split), rs, guards)
}

// splitPolicy converts the wire form for the split package.
func splitPolicy(p wire.SplitPolicy) split.Policy {
	out := split.Policy{Mode: split.Mode(p.Mode)}
	for _, e := range p.Include {
		out.Include = append(out.Include, split.Entry{Prefix: e.Prefix, Comment: e.Comment, Builtin: e.Builtin})
	}
	for _, e := range p.Exclude {
		out.Exclude = append(out.Exclude, split.Entry{Prefix: e.Prefix, Comment: e.Comment, Builtin: e.Builtin})
	}
	return out
}
