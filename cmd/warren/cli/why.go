package cli

import (
	"fmt"
	"io"
	"net/netip"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/warrennet/warren/overlay/ctl"
	"github.com/warrennet/warren/overlay/wire"
)

func (a *app) whyCommand() *cli.Command {
	return &cli.Command{
		Name:      "why",
		Usage:     "explain what this machine does with traffic to IP (split entry, route, connector, tunnelled or not) and what the access policy lets it reach there",
		ArgsUsage: "IP[:PORT][/PROTO]",
		Description: "IP alone explains the address and what the access policy allows there; IP:PORT (TCP), IP:PORT/udp\n" +
			"or IP/icmp ask the policy about one flow. IPv6 with a port: [2001:db8::1]:22.",
		Flags: []cli.Flag{jsonFlag},
		Action: func(c *cli.Context) error {
			if err := argCount(c, 1, "IP[:PORT][/PROTO] [--json]"); err != nil {
				return err
			}
			q, err := parseWhyArg(c.Args().First())
			if err != nil {
				return err
			}
			cl := ctl.NewClient(a.socket(c))
			defer cl.Close()
			w, err := cl.Why(c.Context, q)
			if err != nil {
				return err
			}
			if c.Bool("json") {
				return a.printJSON(w)
			}
			printWhy(a.env.Stdout, q, w)
			return nil
		},
	}
}

// parseWhyArg reads IP, IP:PORT, IP:PORT/PROTO or IP/icmp
// ([IPv6]:PORT with a port).
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
	if ip, err := netip.ParseAddr(s); err == nil && ip.Zone() == "" {
		q.IP = ip.Unmap()
	} else if ap, err := netip.ParseAddrPort(s); err == nil && ap.Addr().Zone() == "" {
		q.IP, q.Port, q.HasPort = ap.Addr().Unmap(), ap.Port(), true
	} else {
		return q, fmt.Errorf("%q is not IP, IP:PORT or IP:PORT/PROTO (IPv6 with a port: [2001:db8::1]:22)", arg)
	}
	switch {
	case q.Proto == wire.ProtoICMP && q.HasPort:
		return q, fmt.Errorf("%q: icmp has no ports; ask about %s/icmp", arg, q.IP)
	case q.Proto != "" && q.Proto != wire.ProtoICMP && !q.HasPort:
		return q, fmt.Errorf("%q: give a port with %s, as in %s/%s", arg, q.Proto, netip.AddrPortFrom(q.IP, 53), q.Proto)
	}
	return q, nil
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
