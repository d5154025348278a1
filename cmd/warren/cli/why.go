package cli

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/warrennet/warren/overlay/ctl"
)

func (a *app) whyCommand() *cli.Command {
	return &cli.Command{
		Name:      "why",
		Usage:     "explain what this machine does with traffic to IP: split entry, route, connector, tunnelled or not",
		ArgsUsage: "IP",
		Flags:     []cli.Flag{jsonFlag},
		Action: func(c *cli.Context) error {
			if err := argCount(c, 1, "IP [--json]"); err != nil {
				return err
			}
			arg := c.Args().First()
			ip, err := netip.ParseAddr(strings.TrimSpace(arg))
			if err != nil || ip.Zone() != "" {
				return fmt.Errorf("%q is not an IP address", arg)
			}
			cl := ctl.NewClient(a.socket(c))
			defer cl.Close()
			w, err := cl.Why(c.Context, ip)
			if err != nil {
				return err
			}
			if c.Bool("json") {
				return a.printJSON(w)
			}
			fmt.Fprintln(a.env.Stdout, w.Reason)
			if w.LocalLAN != "" {
				fmt.Fprintln(a.env.Stdout, w.LocalLAN)
			}
			return nil
		},
	}
}
