package coordclient

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"

	"github.com/warrennet/warren/overlay/wire"
)

// SplitPolicy returns the split-tunnel policy.
func (a *Admin) SplitPolicy(ctx context.Context) (*wire.SplitPolicy, error) {
	var p wire.SplitPolicy
	if err := a.c.do(ctx, http.MethodGet, wire.PathSplit, nil, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// SetSplitMode switches the split-tunnel mode.
func (a *Admin) SetSplitMode(ctx context.Context, mode wire.SplitMode) (*wire.SplitEditResponse, error) {
	return a.splitEdit(ctx, http.MethodPost, wire.PathSplitMode, wire.SplitModeRequest{Mode: mode})
}

// AddSplitEntry adds a prefix to the current mode's list.
func (a *Admin) AddSplitEntry(ctx context.Context, req wire.SplitEntryRequest) (*wire.SplitEditResponse, error) {
	return a.splitEdit(ctx, http.MethodPost, wire.PathSplitEntries, req)
}

// RemoveSplitEntry removes a prefix from the current mode's list.
func (a *Admin) RemoveSplitEntry(ctx context.Context, p netip.Prefix) (*wire.SplitEditResponse, error) {
	if !p.IsValid() {
		return nil, fmt.Errorf("removing split entry: invalid prefix")
	}
	path := wire.PathSplitEntries + "/" + url.PathEscape(p.Addr().String()) + "/" + strconv.Itoa(p.Bits())
	return a.splitEdit(ctx, http.MethodDelete, path, nil)
}

// ResetSplit restores the default split-tunnel policy.
func (a *Admin) ResetSplit(ctx context.Context) (*wire.SplitEditResponse, error) {
	return a.splitEdit(ctx, http.MethodPost, wire.PathSplitReset, nil)
}

// EffectiveSplit reports what a client would tunnel, and why.
func (a *Admin) EffectiveSplit(ctx context.Context) (*wire.SplitEffective, error) {
	var e wire.SplitEffective
	if err := a.c.do(ctx, http.MethodGet, wire.PathSplitEffective, nil, &e); err != nil {
		return nil, err
	}
	return &e, nil
}

func (a *Admin) splitEdit(ctx context.Context, method, path string, in any) (*wire.SplitEditResponse, error) {
	var resp wire.SplitEditResponse
	if err := a.c.do(ctx, method, path, in, &resp); err != nil {
		return nil, err
	}
	return &resp, nil
}
