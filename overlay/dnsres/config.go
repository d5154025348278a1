package dnsres

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/miekg/dns"
)

// Host is a name the resolver answers itself, as NAME and NAME.SUFFIX.
type Host struct {
	Name  string       // a domain name without a trailing dot, matched without regard to case
	Addrs []netip.Addr // at least one; IPv4-mapped IPv6 addresses are taken as IPv4
}

// Domain is a pushed domain: names at or under Suffix go to Servers
// (port 53) through the Dialer.
type Domain struct {
	Suffix  string       // a domain name without a trailing dot
	Servers []netip.Addr // at least one, tried in order
}

// Config is what the resolver answers and where it forwards. The zero
// Config answers nothing and forwards nothing (every query SERVFAIL).
type Config struct {
	Hosts      []Host
	HostSuffix string // e.g. "warren.internal"; empty: hosts answer only as NAME
	Domains    []Domain
	Fallback   []netip.AddrPort // the system's previous resolvers, reached over the normal network
}

// ErrInvalidConfig is wrapped by every error Validate returns.
var ErrInvalidConfig = errors.New("invalid dns configuration")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
}

// Validate reports the first problem of c, wrapping ErrInvalidConfig.
func (c Config) Validate() error {
	_, err := build(c)
	return err
}

// checkName checks a configured name: a domain name of at least one label,
// without a trailing dot, that packs on the wire.
func checkName(what, s string) (string, error) {
	if s == "" || strings.HasSuffix(s, ".") {
		return "", invalid("%s %q: want a domain name without a trailing dot", what, s)
	}
	n, ok := canonical(s)
	if !ok {
		return "", invalid("%s %q: not a domain name", what, s)
	}
	return n, nil
}

// canonical returns s as a lowercase FQDN in miekg/dns's canonical
// escaping (packed and unpacked), or false when s is not a domain name.
func canonical(s string) (string, bool) {
	if s == "" {
		return "", false
	}
	buf := make([]byte, 256)
	off, err := dns.PackDomainName(dns.Fqdn(s), buf, 0, nil, false)
	if err != nil {
		return "", false
	}
	n, _, err := dns.UnpackDomainName(buf[:off], 0)
	if err != nil {
		return "", false
	}
	return asciiLower(n), true
}

// asciiLower lowercases ASCII letters only (DNS case-insensitivity,
// RFC 4343), leaving every other byte as it is.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
