package cli

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/warrennet/warren/overlay/coordclient"
	"github.com/warrennet/warren/overlay/wire"
)

// maxFlowLimit is the most records the coordinator returns at once.
const maxFlowLimit = 10000

const flowsUsage = "[--user USER] [--dest CIDR|IP] [--since DURATION] [--denied] [--limit N] [--json]"

func (a *app) flowsCommand() *cli.Command {
	return &cli.Command{
		Name:      "flows",
		Usage:     "show the connectors' flow log, newest first: who reached what, allowed or denied, bytes each way",
		ArgsUsage: " ",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "user", Usage: "only this user's flows"},
			&cli.StringFlag{Name: "dest", Usage: "only flows to this prefix or address"},
			&cli.StringFlag{Name: "since", Usage: "only flows that started this long ago or later, e.g. 30m, 24h or 7d"},
			&cli.BoolFlag{Name: "denied", Usage: "only denied flows"},
			&cli.IntFlag{Name: "limit", Usage: fmt.Sprintf("at most this many flows, 1 to %d (default 1000)", maxFlowLimit)},
			jsonFlag,
		},
		Action: a.flows,
	}
}

func (a *app) flows(c *cli.Context) error {
	if err := argCount(c, 0, flowsUsage); err != nil {
		return err
	}
	q, err := flowQuery(c)
	if err != nil {
		return err
	}
	return a.withAdmin(c, func(admin *coordclient.Admin) error {
		recs, err := admin.Flows(c.Context, q)
		if err != nil {
			return err
		}
		if c.Bool("json") {
			return a.printJSON(recs)
		}
		if len(recs) == 0 {
			if q == (coordclient.FlowQuery{}) {
				fmt.Fprintln(a.env.Stdout, "no flows recorded: connectors report each flow once it ends")
			} else {
				fmt.Fprintln(a.env.Stdout, "no flows match")
			}
			return nil
		}
		w := tabwriter.NewWriter(a.env.Stdout, 0, 4, 2, ' ', 0)
		row(w, "START", "USER", "NODE", "CONNECTOR", "SRC", "DST", "PROTO", "DECISION", "RULE", "UP", "DOWN", "DURATION")
		for _, r := range recs {
			user, rule := "-", "-"
			if r.User != "" {
				user = r.User
			}
			if r.Rule != 0 {
				rule = ruleCell(r.Rule)
			}
			row(w,
				r.Start.Local().Format("2006-01-02 15:04:05"), user, r.Node, r.Connector,
				endpoint(r.Src, r.Proto), endpoint(r.Dst, r.Proto), r.Proto, r.Decision, rule,
				humanBytes(r.BytesUp), humanBytes(r.BytesDown), humanDuration(r.Duration()))
		}
		return w.Flush()
	})
}

// ruleCell names a rule in the RULE column: "3" for rule 3, "ssh 1" for
// ssh rule 1.
func ruleCell(rule int) string {
	if rule > wire.SSHRuleBase {
		return "ssh " + strconv.Itoa(rule-wire.SSHRuleBase)
	}
	return strconv.Itoa(rule)
}

// flowQuery reads the filter flags, refusing bad ones before any call.
func flowQuery(c *cli.Context) (coordclient.FlowQuery, error) {
	var q coordclient.FlowQuery
	if u := c.String("user"); u != "" {
		if err := wire.ValidateUser(u); err != nil {
			return q, fmt.Errorf("--user: %w", err)
		}
		q.User = u
	}
	if d := c.String("dest"); d != "" {
		p, err := parseFlowDest(d)
		if err != nil {
			return q, err
		}
		q.Dest = p
	}
	if s := c.String("since"); s != "" {
		d, err := parsePositiveDuration(s)
		if err != nil {
			return q, fmt.Errorf("--since %q is not a positive duration (for example 30m, 24h or 7d)", s)
		}
		q.Since = d
	}
	q.DeniedOnly = c.Bool("denied")
	if c.IsSet("limit") {
		n := c.Int("limit")
		if n < 1 || n > maxFlowLimit {
			return q, fmt.Errorf("--limit %d is not from 1 to %d", n, maxFlowLimit)
		}
		q.Limit = n
	}
	return q, nil
}

// parseFlowDest reads a CIDR prefix, or an IP address as the prefix of
// just that address.
func parseFlowDest(s string) (netip.Prefix, error) {
	bad := fmt.Errorf("--dest %q is not a CIDR prefix or an IP address (for example 192.168.0.0/24 or 192.168.0.10)", s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, bad
		}
		return p.Masked(), nil
	}
	addr, err := netip.ParseAddr(s)
	if err != nil || addr.Zone() != "" {
		return netip.Prefix{}, bad
	}
	addr = addr.Unmap()
	return netip.PrefixFrom(addr, addr.BitLen()), nil
}

// parsePositiveDuration reads a Go duration, or a whole number of days as
// "7d".
func parsePositiveDuration(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err == nil && n > 0 {
			return time.Duration(n) * 24 * time.Hour, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, err
	}
	if d <= 0 {
		return 0, fmt.Errorf("%v is not positive", d)
	}
	return d, nil
}

// endpoint shows an address and port; ICMP has no ports, so just the
// address.
func endpoint(ap netip.AddrPort, proto wire.Proto) string {
	switch {
	case !ap.IsValid():
		return "-"
	case proto == wire.ProtoICMP:
		return ap.Addr().String()
	}
	return ap.String()
}

// humanBytes shows a byte count in binary units: 512B, 1.5KiB, 3.2GiB.
func humanBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%dB", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f%ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// humanDuration shows how long a flow lasted: 350ms, 4.2s, 1h2m3s.
func humanDuration(d time.Duration) string {
	switch {
	case d <= 0:
		return "0s"
	case d < time.Millisecond:
		return "<1ms"
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%.1fs", d.Seconds())
	}
	return d.Round(time.Second).String()
}
