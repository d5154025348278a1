package policy

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"unicode"

	"github.com/warrennet/warren/overlay/wire"
	"github.com/warrennet/warren/routes"
)

// Dest is one flow's destination as a person writes it for `policy why`
// and in a document's tests: "192.168.0.10:22", "production-server:443/tcp",
// "[2001:db8::1]:53/udp", "192.168.0.10/icmp".
type Dest struct {
	// Addr is the destination address; invalid when Host names it instead.
	Addr netip.Addr
	// Host is a named host (`warren hosts add`), resolved by the caller.
	Host string
	// Port is the destination port; 0 for ICMP.
	Port uint16
	// Proto is tcp, udp or icmp, never any.
	Proto wire.Proto
}

// ParseDest reads "ADDR:PORT[/PROTO]" or "HOST:PORT[/PROTO]", with an IPv6
// address in brackets ("[2001:db8::1]:22"). The protocol is tcp, udp or
// icmp, tcp when omitted. ICMP has no port: "ADDR/icmp", or "ADDR:*/icmp"
// (a port number given with icmp is ignored).
func ParseDest(s string) (Dest, error) {
	var d Dest
	rest, proto, _ := cutLast(s, "/")
	if strings.ContainsAny(proto, ":]") {
		// "10.0.0.0/24:22": the slash is a prefix length, not a protocol.
		rest, proto = s, ""
	}
	p, err := wire.ParseProto(proto)
	if err != nil {
		return Dest{}, fmt.Errorf("%q: %w", s, err)
	}
	if p == wire.ProtoAny {
		return Dest{}, fmt.Errorf("%q: a flow has one protocol: tcp, udp or icmp", s)
	}
	d.Proto = p
	host, port, err := splitHostPort(rest, p == wire.ProtoICMP)
	if err != nil {
		return Dest{}, fmt.Errorf("%q: %w", s, err)
	}
	switch {
	case p == wire.ProtoICMP:
		// Ports do not apply; accept a number or * and drop it.
		if port != "" && port != "*" {
			if _, err := wire.ParsePortRange(port); err != nil || strings.Contains(port, "-") {
				return Dest{}, fmt.Errorf("%q: %q is not a port", s, port)
			}
		}
	case port == "*" || strings.Contains(port, "-"):
		return Dest{}, fmt.Errorf("%q: a flow goes to one port, not %s", s, printable(port))
	default:
		r, err := wire.ParsePortRange(port)
		if err != nil {
			return Dest{}, fmt.Errorf("%q: %w", s, err)
		}
		d.Port = r.First
	}
	if strings.Contains(host, "/") {
		return Dest{}, fmt.Errorf("%q: a flow goes to one address, not to a prefix", s)
	}
	pfx, name, err := parseHost(host)
	if err != nil {
		return Dest{}, fmt.Errorf("%q: %w", s, err)
	}
	if name != "" {
		d.Host = name
	} else {
		d.Addr = pfx.Addr()
	}
	return d, nil
}

// String formats d the way ParseDest reads it: "192.168.0.10:22/tcp",
// "[2001:db8::1]:53/udp", "192.168.0.10/icmp".
func (d Dest) String() string {
	host := d.Host
	if host == "" {
		host = d.Addr.String()
		if d.Addr.Is6() {
			host = "[" + host + "]"
		}
	}
	if d.Proto == wire.ProtoICMP {
		return host + "/icmp"
	}
	return host + ":" + strconv.Itoa(int(d.Port)) + "/" + string(d.Proto)
}

// Resolve returns d's address, looking a named host up in hosts.
func (d Dest) Resolve(hosts map[string]netip.Addr) (netip.Addr, error) {
	if d.Host == "" {
		return d.Addr, nil
	}
	a, ok := hosts[d.Host]
	switch {
	case !ok:
		return netip.Addr{}, fmt.Errorf("host %q is not declared (warren hosts add %s IP)", d.Host, d.Host)
	case !a.IsValid():
		return netip.Addr{}, fmt.Errorf("host %q has no address", d.Host)
	}
	return hostAddr(a), nil
}

// hostAddr is a declared host's address as a policy compares it.
func hostAddr(a netip.Addr) netip.Addr { return a.Unmap().WithZone("") }

// flowText formats a flow for reasons: "192.168.0.10:22/tcp",
// "[2001:db8::1]:53/udp", "192.168.0.10/icmp".
func flowText(dst netip.Addr, port uint16, proto wire.Proto) string {
	return Dest{Addr: dst, Port: port, Proto: proto}.String()
}

// target is one destination of a rule: "192.168.0.0/24:22",
// "production-server:443", "[2001:db8::/64]:*".
type target struct {
	host   string       // the named host, if the destination names one
	prefix netip.Prefix // the destination's addresses (the host's, once resolved)
	ports  wire.PortRange
}

// parseTarget reads a rule's destination.
func parseTarget(s string) (target, error) {
	host, port, err := splitHostPort(s, false)
	if err != nil {
		return target{}, fmt.Errorf("destination %q: %w", s, err)
	}
	var t target
	if t.ports, err = wire.ParsePortRange(port); err != nil {
		return target{}, fmt.Errorf("destination %q: %w", s, err)
	}
	if t.prefix, t.host, err = parseHost(host); err != nil {
		return target{}, fmt.Errorf("destination %q: %w", s, err)
	}
	return t, nil
}

// sshPort is what an ssh rule grants on its destinations.
var sshPort = wire.PortRange{First: 22, Last: 22}

// parseSSHTarget reads an ssh rule's destination: "CIDR", "IP" or "HOST"
// without a port; IPv6 bare or in brackets.
func parseSSHTarget(s string) (target, error) {
	host := s
	if strings.HasPrefix(s, "[") {
		end := strings.Index(s, "]")
		if end < 0 {
			return target{}, fmt.Errorf("destination %q: missing ] after the IPv6 address", s)
		}
		if end != len(s)-1 {
			return target{}, fmt.Errorf("destination %q: an ssh rule's destinations have no port (ssh is port 22): write %s", s, printable(s[:end+1]))
		}
		host = s[1:end]
		if !strings.Contains(host, ":") {
			return target{}, fmt.Errorf("destination %q: brackets hold an IPv6 address or prefix, not %q", s, host)
		}
	} else if before, port, ok := cutLast(s, ":"); ok && !isIPv6(s) {
		if _, err := wire.ParsePortRange(port); err == nil {
			return target{}, fmt.Errorf("destination %q: an ssh rule's destinations have no port (ssh is port 22): write %s", s, printable(before))
		}
		return target{}, fmt.Errorf("destination %q: not an address, a CIDR prefix or a host name", s)
	}
	t := target{ports: sshPort}
	var err error
	if t.prefix, t.host, err = parseHost(host); err != nil {
		return target{}, fmt.Errorf("destination %q: %w", s, err)
	}
	return t, nil
}

// isIPv6 reports whether s reads as an IPv6 address or prefix, however
// wrong (a zone, host bits): parseHost says what is wrong with it.
func isIPv6(s string) bool {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Is6()
	}
	p, err := netip.ParsePrefix(s)
	return err == nil && p.Addr().Is6()
}

// String is the canonical text of t: "192.168.0.0/24:22",
// "production-server:443", "[2001:db8::1]:*".
func (t target) String() string {
	if t.host != "" {
		return t.host + ":" + t.ports.String()
	}
	return prefixText(t.prefix) + ":" + t.ports.String()
}

// prefixText formats p for destinations: a single address without its
// length, IPv6 in brackets.
func prefixText(p netip.Prefix) string {
	s := p.String()
	if p.IsSingleIP() {
		s = p.Addr().String()
	}
	if p.Addr().Is6() {
		return "[" + s + "]"
	}
	return s
}

// grantText formats a grant as Diff shows it: "192.168.0.0/24:22/tcp".
func grantText(g wire.Grant) string {
	return prefixText(g.Prefix) + ":" + g.Ports.String() + "/" + string(g.Proto)
}

// splitHostPort splits "HOST:PORT" and "[IPV6]:PORT". When portOptional,
// a destination without a port yields port "".
func splitHostPort(s string, portOptional bool) (host, port string, err error) {
	if strings.HasPrefix(s, "[") {
		end := strings.Index(s, "]")
		if end < 0 {
			return "", "", fmt.Errorf("missing ] after the IPv6 address")
		}
		host, rest := s[1:end], s[end+1:]
		if !strings.Contains(host, ":") {
			return "", "", fmt.Errorf("brackets hold an IPv6 address or prefix, not %q", host)
		}
		switch {
		case rest == "" && portOptional:
			return host, "", nil
		case rest == "":
			return "", "", fmt.Errorf("no port: write %s:PORTS (22, 8000-8999 or *)", printable(s))
		case rest[0] != ':':
			return "", "", fmt.Errorf("want :PORTS after ]")
		}
		return host, rest[1:], nil
	}
	if portOptional {
		if _, err := netip.ParseAddr(s); err == nil || !strings.Contains(s, ":") {
			return s, "", nil
		}
	}
	host, port, ok := cutLast(s, ":")
	if !ok {
		return "", "", fmt.Errorf("no port: write %s:PORTS (22, 8000-8999 or *)", printable(s))
	}
	if strings.Contains(host, ":") {
		return "", "", fmt.Errorf("write an IPv6 destination in brackets, as in [2001:db8::1]:22")
	}
	return host, port, nil
}

// parseHost reads a prefix, an address (as a single-address prefix) or a
// host name (returned in name, with an invalid prefix).
func parseHost(s string) (p netip.Prefix, name string, err error) {
	if strings.Contains(s, "/") {
		p, err := routes.ParsePrefix(s)
		return p, "", err
	}
	if a, err := netip.ParseAddr(s); err == nil {
		switch {
		case a.Zone() != "":
			return netip.Prefix{}, "", fmt.Errorf("%s has a zone; policies name addresses without one", printable(s))
		case a.Is4In6():
			return netip.Prefix{}, "", fmt.Errorf("%s is an IPv4-mapped IPv6 address; did you mean %v?", printable(s), a.Unmap())
		}
		return netip.PrefixFrom(a, a.BitLen()), "", nil
	}
	if strings.Trim(s, "0123456789.") == "" {
		return netip.Prefix{}, "", fmt.Errorf("%q is not an IP address", s)
	}
	if err := wire.ValidateName(s); err != nil {
		return netip.Prefix{}, "", fmt.Errorf("%q is not an address, a CIDR prefix or a host name", s)
	}
	return netip.Prefix{}, s, nil
}

// printable returns s for a message, quoted when it holds a character
// that does not print (so a message stays one line).
func printable(s string) string {
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return strconv.Quote(s)
		}
	}
	return s
}

// cutLast slices s around the last sep.
func cutLast(s, sep string) (before, after string, found bool) {
	if i := strings.LastIndex(s, sep); i >= 0 {
		return s[:i], s[i+len(sep):], true
	}
	return s, "", false
}
