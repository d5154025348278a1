package cli

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/warrennet/warren/overlay/ctl"
	"github.com/warrennet/warren/overlay/wire"
)

func (a *app) whyCommand() *cli.Command {
	return &cli.Command{
		Name:      "why",
		Usage:     "explain what this machine does with traffic to a destination (split entry, route, connector, tunnelled or not) and what the access policy lets it reach there",
		ArgsUsage: "DEST",
		Description: "DEST is IP or NAME, optionally with :PORT (TCP), :PORT/udp, or /icmp: IP alone explains the address and\n" +
			"what the access policy allows there; with a port or /icmp the policy is asked about one flow. IPv6 with a\n" +
			"port: [2001:db8::1]:22. A NAME is resolved by the daemon: the netmap's named hosts first, then the system's\n" +
			"resolver. --quiet prints nothing and exits 0 when DEST goes through the tunnel, 1 when not, 2 on an error\n" +
			"(for ssh's Match exec \"warren why --quiet %h\").",
		Flags: []cli.Flag{jsonFlag, &cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "no output: exit 0 tunnelled, 1 not, 2 on an error"}},
		Action: func(c *cli.Context) error {
			quiet := c.Bool("quiet")
			w, q, err := a.why(c)
			switch {
			case err != nil && quiet:
				return &ExitError{Status: 2, Err: err}
			case err != nil:
				return err
			case quiet && w.Tunnelled:
				return nil
			case quiet:
				return &ExitError{Status: 1}
			case c.Bool("json"):
				return a.printJSON(w)
			}
			printWhy(a.env.Stdout, q, w)
			return nil
		},
	}
}

// why asks the daemon about the command's destination.
func (a *app) why(c *cli.Context) (*ctl.Why, ctl.WhyQuery, error) {
	if err := argCount(c, 1, "DEST [--json | --quiet]"); err != nil {
		return nil, ctl.WhyQuery{}, err
	}
	if c.Bool("quiet") && c.Bool("json") {
		return nil, ctl.WhyQuery{}, errors.New("give --quiet or --json, not both")
	}
	q, err := parseWhyArg(c.Args().First())
	if err != nil {
		return nil, q, err
	}
	cl := ctl.NewClient(a.socket(c))
	defer cl.Close()
	w, err := cl.Why(c.Context, q)
	return w, q, err
}

// parseWhyArg reads IP or NAME, then [:PORT][/PROTO] (IPv6 with a port:
// [IPv6]:PORT).
func parseWhyArg(arg string) (ctl.WhyQuery, error) {
	var q ctl.WhyQuery
	s := strings.TrimSpace(arg)
	if i := strings.LastIndexByte(s, '/'); i >= 0 {
		switch p := wire.Proto(s[i+1:]); p {
		case wire.ProtoTCP, wire.ProtoUDP, wire.ProtoICMP:
			q.Proto, s = p, s[:i]
		default:
			return q, fmt.Errorf("%q: protocol %q is not one of: tcp, udp, icmp", arg, s[i+1:])
		}
	}
	bad := fmt.Errorf("%q is not IP, NAME, IP:PORT or NAME:PORT, optionally /PROTO (IPv6 with a port: [2001:db8::1]:22)", arg)
	if ip, err := netip.ParseAddr(s); err == nil {
		if ip.Zone() != "" {
			return q, bad
		}
		q.IP = ip.Unmap()
	} else if ap, err := netip.ParseAddrPort(s); err == nil {
		if ap.Addr().Zone() != "" {
			return q, bad
		}
		q.IP, q.Port, q.HasPort = ap.Addr().Unmap(), ap.Port(), true
	} else if host, port, err := net.SplitHostPort(s); err == nil && isName(host) {
		n, err := strconv.ParseUint(port, 10, 16)
		if err != nil {
			return q, bad
		}
		q.Host, q.Port, q.HasPort = host, uint16(n), true
	} else if isName(s) {
		q.Host = s
	} else {
		return q, bad
	}
	dest := q.Host
	if q.IP.IsValid() {
		dest = q.IP.String()
	}
	switch {
	case q.Proto == wire.ProtoICMP && q.HasPort:
		return q, fmt.Errorf("%q: icmp has no ports; ask about %s/icmp", arg, dest)
	case q.Proto != "" && q.Proto != wire.ProtoICMP && !q.HasPort:
		return q, fmt.Errorf("%q: give a port with %s, as in %s:53/%s", arg, q.Proto, bracketed(q, dest), q.Proto)
	}
	return q, nil
}

// isName reports whether s is a host name rather than a mistyped address:
// valid as a host and holding a letter.
func isName(s string) bool {
	if _, err := netip.ParseAddr(s); err == nil || !validHost(s) {
		return false
	}
	return strings.ContainsFunc(s, func(r rune) bool { return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' })
}

// bracketed writes dest as it goes before :PORT.
func bracketed(q ctl.WhyQuery, dest string) string {
	if q.IP.Is6() {
		return "[" + dest + "]"
	}
	return dest
}

// printWhy renders an answer for a person: the split-tunnel decision,
// the LAN it shadows, and the access policy's word.
func printWhy(w io.Writer, q ctl.WhyQuery, why *ctl.Why) {
	fmt.Fprintln(w, why.Reason)
	if why.LocalLAN != "" {
		fmt.Fprintln(w, why.LocalLAN)
	}
	if why.PolicyReason != "" {
		fmt.Fprintln(w, why.PolicyReason)
	} else if _, _, flow := q.Flow(); flow && !why.Tunnelled {
		fmt.Fprintf(w, "the access policy does not apply: traffic to %s does not enter the tunnel\n", why.IP)
	}
}
