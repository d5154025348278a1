package wire

import (
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// Split-DNS path.
const (
	PathDNS = "/v1/admin/dns" // GET: []DNSDomain; POST SetDNSRequest: DNSDomain (replaces the domain's servers); DELETE …/DOMAIN
)

// DNS limits.
const (
	// MaxDNSServers bounds the servers of one domain.
	MaxDNSServers = 8
	// MaxDomainLen is the longest domain name (RFC 1035, without the
	// trailing dot).
	MaxDomainLen = 253
	// DefaultHostSuffix is the suffix under which clients resolve the
	// named hosts (NAME.SUFFIX) unless the coordinator says another.
	DefaultHostSuffix = "warren.internal"
)

// DNSDomain is a split-DNS entry: names under Domain are resolved by
// Servers, through the tunnel (`warren dns add DOMAIN --server IP`).
type DNSDomain struct {
	// Domain is lowercase, without a trailing dot.
	Domain string `json:"domain"`
	// Servers are in the order the admin gave them.
	Servers   []netip.Addr `json:"servers"`
	UpdatedAt time.Time    `json:"updated_at"`
}

// SetDNSRequest is the body of POST PathDNS. It replaces the domain's
// servers, or adds the domain.
type SetDNSRequest struct {
	Domain  string   `json:"domain"`
	Servers []string `json:"servers"`
}

// NetMapDNS is a split-DNS entry as a client's netmap carries it.
type NetMapDNS struct {
	Domain  string       `json:"domain"`
	Servers []netip.Addr `json:"servers"`
}

// CanonicalDomain returns s lowercased, without one trailing dot, or an
// error saying what is wrong with it as a domain name: labels of letters,
// digits and inner hyphens, 1 to 63 characters each, 253 in all.
func CanonicalDomain(s string) (string, error) {
	d := strings.ToLower(strings.TrimSpace(s))
	d = strings.TrimSuffix(d, ".")
	switch {
	case d == "":
		return "", fmt.Errorf("%q is not a domain name (for example corp.example)", s)
	case len(d) > MaxDomainLen:
		return "", fmt.Errorf("domain name %q is longer than %d characters", s, MaxDomainLen)
	}
	for _, l := range strings.Split(d, ".") {
		if l == "" {
			return "", fmt.Errorf("domain name %q has an empty label", s)
		}
		if len(l) > 63 {
			return "", fmt.Errorf("domain name %q has a label longer than 63 characters", s)
		}
		for i, c := range l {
			ok := 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' && i > 0 && i < len(l)-1
			if !ok {
				return "", fmt.Errorf("domain name %q may hold only letters, digits and inner hyphens in each label", s)
			}
		}
	}
	return d, nil
}
