package routes

import (
	"errors"
	"fmt"
	"net/netip"
)

// Overlay is the address range of Warren's overlay network.
var Overlay = netip.MustParsePrefix("100.96.0.0/12")

// Sentinel errors. Every error this package returns for a bad prefix wraps
// one of them, so callers branch with errors.Is; the error text itself is a
// complete one-line message fit to print as-is.
var (
	// ErrInvalidPrefix: the input is not a usable CIDR prefix. Every error
	// from ParsePrefix wraps it, including those that also wrap ErrHostBits.
	ErrInvalidPrefix = errors.New("invalid prefix")
	// ErrHostBits: the prefix has bits set beyond its length.
	ErrHostBits = errors.New("prefix has host bits set")
	// ErrReserved: the prefix overlaps a range that cannot be routed through
	// a connector, or is a default route.
	ErrReserved = errors.New("prefix cannot be routed")
	// ErrServedByOther: another connector already serves exactly this prefix.
	ErrServedByOther = errors.New("prefix is served by another connector")
)

// prefixError carries an exact user-facing message and the sentinels it
// wraps; the sentinels never show in the text.
type prefixError struct {
	msg   string
	kinds []error
}

func (e *prefixError) Error() string   { return e.msg }
func (e *prefixError) Unwrap() []error { return e.kinds }

func newError(msg string, kinds ...error) error {
	return &prefixError{msg: msg, kinds: kinds}
}

// ParsePrefix parses a CIDR prefix typed by a person and returns it in
// canonical form: no host bits, no zone, IPv4 as IPv4 (never IPv4-mapped
// IPv6), IPv6 in the lowercase compressed form that String prints. It does
// not trim spaces. On failure the error wraps ErrInvalidPrefix (and
// ErrHostBits when only host bits are wrong) and, where one exists, suggests
// an input that ParsePrefix accepts.
func ParsePrefix(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		if a, aerr := netip.ParseAddr(s); aerr == nil && a.Zone() == "" {
			a = a.Unmap()
			return netip.Prefix{}, newError(
				fmt.Sprintf("%q is an address, not a prefix; did you mean %v?", s, netip.PrefixFrom(a, a.BitLen())),
				ErrInvalidPrefix)
		}
		return netip.Prefix{}, invalidInput(s)
	}
	if err := checkCanonical(p); err != nil {
		return netip.Prefix{}, err
	}
	return p, nil
}

func invalidInput(s string) error {
	return newError(fmt.Sprintf("%q is not a valid CIDR prefix (for example 192.168.0.0/24)", s), ErrInvalidPrefix)
}

// checkCanonical reports why p is not in the canonical form ParsePrefix
// returns, or nil.
func checkCanonical(p netip.Prefix) error {
	switch {
	case !p.IsValid():
		return newError("invalid prefix", ErrInvalidPrefix)
	case p.Addr().Is4In6() && p.Bits() >= 96:
		// Only a mapped prefix of at least /96 has an IPv4 form; a shorter
		// one has host bits set (bits 80-95 of a mapped address are ones).
		v4 := netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96).Masked()
		return newError(fmt.Sprintf("%v is an IPv4-mapped IPv6 prefix; did you mean %v?", p, v4), ErrInvalidPrefix)
	case p != p.Masked():
		return newError(fmt.Sprintf("%v has host bits set; did you mean %v?", p, p.Masked()), ErrHostBits, ErrInvalidPrefix)
	}
	return nil
}

// CheckRoutable reports why p may not be routed through a connector, or nil.
// A prefix may not be routed when it is a default route or overlaps
// (contains or lies inside) a range of the destination guard (GuardTable)
// or one of its embedded forms (GuardEmbeddings: the NAT64, 6to4 or Teredo
// form of a refused IPv4 range), so that a route accepted here holds no
// address NeverServed refuses. Such errors wrap ErrReserved and name the
// range: the most specific one that holds all of p, or else the lowest one
// p overlaps. A p that ParsePrefix would not return gets the same error
// ParsePrefix gives for it.
func CheckRoutable(p netip.Prefix) error {
	if err := checkCanonical(p); err != nil {
		return err
	}
	if p.Bits() == 0 {
		return newError(fmt.Sprintf("%v would send all traffic to a connector; full tunnels are not supported", p), ErrReserved)
	}
	if pt := guardOverlap(p); pt != nil {
		return newError(fmt.Sprintf("%v overlaps %s and cannot be routed", p, pt.what), ErrReserved)
	}
	return nil
}

// ParseRoutable parses s with ParsePrefix and checks the result with
// CheckRoutable.
func ParseRoutable(s string) (netip.Prefix, error) {
	p, err := ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	if err := CheckRoutable(p); err != nil {
		return netip.Prefix{}, err
	}
	return p, nil
}
