package coord

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/warrennet/warren/overlay/coord/store"
	"github.com/warrennet/warren/overlay/wire"
)

// AddHost names an address, so that policy rules can use the name.
func (c *Coordinator) AddHost(ctx context.Context, req wire.AddHostRequest) (wire.Host, error) {
	if err := wire.ValidateName(req.Name); err != nil {
		return wire.Host{}, errorf(wire.CodeInvalid, "host %v", err)
	}
	a, err := netip.ParseAddr(strings.TrimSpace(req.Address))
	if err != nil || a.Zone() != "" {
		return wire.Host{}, errorf(wire.CodeInvalid, "%q is not an IP address (for example 192.168.0.10)", req.Address)
	}
	a = a.Unmap()
	if a.IsUnspecified() {
		return wire.Host{}, errorf(wire.CodeInvalid, "%s is the unspecified address, not a host", a)
	}
	if err := wire.ValidateComment(req.Comment); err != nil {
		return wire.Host{}, invalid(err)
	}
	h := wire.Host{Name: req.Name, Address: a, Comment: req.Comment, CreatedAt: c.now().UTC()}

	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	s := c.snap.Load()
	i, found := slices.BinarySearchFunc(s.hosts, h, compareHosts)
	if found {
		return wire.Host{}, hostTaken(s.hosts[i])
	}
	version, err := c.store.AddHost(ctx, h)
	if errors.Is(err, store.ErrExists) {
		return wire.Host{}, hostTaken(h)
	}
	if err != nil {
		return wire.Host{}, fmt.Errorf("storing host: %w", err)
	}
	next, err := s.withHosts(version, insertSorted(s.hosts, h, compareHosts))
	if err != nil {
		return wire.Host{}, err
	}
	c.publish(next)
	c.log.Info("host added", "host", h.Name, "address", h.Address)
	return h, nil
}

func hostTaken(h wire.Host) error {
	return errorf(wire.CodeConflict, "a host named %q already exists (%s); remove it first with: warren hosts rm %s", h.Name, h.Address, h.Name)
}

// RemoveHost removes the named host. It refuses while the access policy
// names the host: the policy would stop compiling.
func (c *Coordinator) RemoveHost(ctx context.Context, name string) error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	s := c.snap.Load()
	i, found := slices.BinarySearchFunc(s.hosts, wire.Host{Name: name}, compareHosts)
	if !found {
		return errorf(wire.CodeNotFound, "no host named %q (see: warren hosts ls)", name)
	}
	if line, ok := s.policyNamesHost(name); ok {
		return errorf(wire.CodeConflict, "the access policy names host %q (line %d); change the policy first (warren policy get, warren policy set FILE)", name, line)
	}
	version, err := c.store.RemoveHost(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return errorf(wire.CodeNotFound, "no host named %q (see: warren hosts ls)", name)
	}
	if err != nil {
		return fmt.Errorf("removing host: %w", err)
	}
	next, err := s.withHosts(version, deleteAt(s.hosts, i))
	if err != nil {
		return err
	}
	c.publish(next)
	c.log.Info("host removed", "host", name)
	return nil
}

// Hosts lists the named hosts, sorted by name.
func (c *Coordinator) Hosts() []wire.Host {
	return append([]wire.Host{}, c.snap.Load().hosts...)
}

func compareHosts(a, b wire.Host) int { return cmp.Compare(a.Name, b.Name) }
