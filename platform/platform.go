package platform

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// Sentinel errors, for callers that branch with errors.Is.
var (
	// ErrNotSupported: this operating system has no implementation.
	ErrNotSupported = errors.New("not supported")
	// ErrClosed: the Router was closed.
	ErrClosed = errors.New("router closed")
	// ErrInvalidConfig: Config.Validate rejected the configuration.
	ErrInvalidConfig = errors.New("invalid platform config")
	// ErrNotTUN: the named interface exists but is not a TUN device, so the
	// Router refuses to manage its addresses.
	ErrNotTUN = errors.New("not a TUN device")
)

// Config is the OS state the laptop daemon wants for its tunnel: the
// interface's addresses and the routes that send traffic into it. It is a
// complete description, not a delta: addresses and Warren routes on the
// interface that it does not list are removed.
type Config struct {
	// Interface names the TUN device, e.g. "warren0". It must exist
	// (CreateTUN) before Set.
	Interface string
	// MTU is the interface MTU; 0 leaves it as it is.
	MTU int
	// Addresses are the interface's own addresses with their prefix
	// lengths, e.g. 100.96.0.2/32. Only global unicast addresses may be
	// listed; link-local addresses belong to the kernel and are left alone.
	Addresses []netip.Prefix
	// Routes are the prefixes to send into the tunnel, in canonical form (no
	// host bits). Duplicates are ignored.
	Routes []netip.Prefix
	// Metric is the metric (priority) of every route. 0 means the kernel's
	// default: 0 for IPv4, 1024 for IPv6. Of two routes to the same prefix
	// the lower metric wins, so it decides whether a tunnelled prefix or an
	// identical LAN route takes precedence.
	Metric uint32
}

// maxInterfaceName is the longest interface name Linux accepts (IFNAMSIZ
// less the terminating NUL); other systems are no more generous.
const maxInterfaceName = 15

// MTU bounds: IPv4's minimum and the largest an IP packet can be. IPv6
// needs at least minMTU6 on a link.
const (
	minMTU  = 68
	minMTU6 = 1280
	maxMTU  = 65535
)

// Validate reports the first problem with c. The error wraps
// ErrInvalidConfig.
func (c *Config) Validate() error {
	if err := checkInterfaceName(c.Interface); err != nil {
		return err
	}
	if c.MTU != 0 && (c.MTU < minMTU || c.MTU > maxMTU) {
		return invalidf("mtu %d is outside %d-%d", c.MTU, minMTU, maxMTU)
	}
	v6 := false
	for _, p := range c.Addresses {
		a := p.Addr()
		switch {
		case !p.IsValid():
			return invalidf("address %v is not a valid prefix", p)
		case a.Is4In6():
			return invalidf("address %v is IPv4-mapped IPv6; give it as IPv4", p)
		case !a.IsGlobalUnicast():
			return invalidf("address %v is not a global unicast address", p)
		}
		v6 = v6 || a.Is6()
	}
	for _, p := range c.Routes {
		switch {
		case !p.IsValid():
			return invalidf("route %v is not a valid prefix", p)
		case p.Addr().Is4In6():
			return invalidf("route %v is IPv4-mapped IPv6; give it as IPv4", p)
		case p != p.Masked():
			return invalidf("route %v has host bits set; did you mean %v?", p, p.Masked())
		}
		v6 = v6 || p.Addr().Is6()
	}
	if v6 && c.MTU != 0 && c.MTU < minMTU6 {
		return invalidf("mtu %d is below IPv6's minimum of %d", c.MTU, minMTU6)
	}
	return nil
}

// checkInterfaceName rejects names no kernel would accept as an
// interface name.
func checkInterfaceName(name string) error {
	switch {
	case name == "":
		return invalidf("no interface name")
	case len(name) > maxInterfaceName:
		return invalidf("interface name %q is longer than %d bytes", name, maxInterfaceName)
	case name == "." || name == ".." || strings.ContainsAny(name, "/: \t\n\r\x00"):
		return invalidf("interface name %q is not a valid interface name", name)
	}
	return nil
}

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
}

// Router makes the OS match a Config. Its methods may be called from any
// goroutine; calls are serialised.
type Router interface {
	// Set makes the OS match cfg, which it does not keep. It validates cfg
	// first and changes nothing when it is invalid. It is idempotent:
	// setting a Config that matches the OS changes nothing. It re-reads the
	// OS state each time rather than trusting what it did before, so
	// anything removed behind its back is restored. It adds before it
	// deletes, so a route that stays is never withdrawn, and it keeps going
	// past a failed change, returning every error joined. Set(nil) removes
	// everything the Router installed. After Close it returns ErrClosed.
	Set(cfg *Config) error
	// Close removes everything the Router installed, as Set(nil) does, and
	// releases its resources. It returns the removal's errors; the Router is
	// closed either way. Closing again returns nil.
	Close() error
}
