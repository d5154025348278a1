package cli

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/warrennet/warren/overlay/coordclient"

	"github.com/warrennet/warren/overlay/wire"
	"github.com/warrennet/warren/routes"
)

func (a *app) routesCommand() *cli.Command {
	return &cli.Command{
		Name:  "routes",
		Usage: "declare which connector serves which private prefix",
		Subcommands: []*cli.Command{
			{
				Name:      "add",
				Usage:     "route a prefix to a connector",
				ArgsUsage: "CIDR",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "connector", Usage: "name of the connector that serves CIDR"},
					&cli.StringFlag{Name: "comment", Usage: "a note shown in routes ls"},
					&cli.BoolFlag{Name: "proxy-protocol", Usage: "prepend a PROXY v2 header (the client's overlay address and user) to each TCP flow, for LAN services that log the real client; adding the route again without it turns it off"},
					&cli.BoolFlag{Name: "force", Usage: "add CIDR even when it takes traffic from another connector (it lies inside a shorter route of that connector's); warns which"},
					&cli.BoolFlag{Name: "allow-connector-host", Usage: "let flows to CIDR reach the connector host's own addresses, which the connector otherwise refuses (loopback stays refused); adding the route again without it turns it off"},
				},
				Action: a.routesAdd,
			},
			{Name: "ls", Usage: "list routes", Flags: []cli.Flag{jsonFlag}, Action: a.routesList},
			{Name: "rm", Usage: "remove the route for exactly CIDR", ArgsUsage: "CIDR", Action: a.routesRemove},
			{Name: "get", Usage: "which route and connector would carry IP, or why none", ArgsUsage: "IP", Flags: []cli.Flag{jsonFlag}, Action: a.routesGet},
		},
	}
}

func (a *app) routesAdd(c *cli.Context) error {
	if err := argCount(c, 1, "CIDR --connector NAME [--comment TEXT] [--proxy-protocol] [--allow-connector-host] [--force]"); err != nil {
		return err
	}
	// Checked here too, so a typo needs no coordinator to be caught.
	p, err := routes.ParseRoutable(c.Args().First())
	if err != nil {
		return err
	}
	if c.String("connector") == "" {
		return errors.New("no connector given; add --connector NAME")
	}
	return a.withAdmin(c, func(admin *coordclient.Admin) error {
		r, err := admin.AddRoute(c.Context, wire.AddRouteRequest{Prefix: p.String(), Connector: c.String("connector"), Comment: c.String("comment"),
			ProxyProtocol: c.Bool("proxy-protocol"), AllowConnectorHost: c.Bool("allow-connector-host"), Force: c.Bool("force")})
		if err != nil {
			return err
		}
		opts := ""
		if r.ProxyProtocol {
			opts += ", PROXY v2 on TCP flows"
		}
		if r.AllowConnectorHost {
			opts += ", the connector host's own addresses reachable"
		}
		fmt.Fprintf(a.env.Stdout, "route %s → connector %s%s\n", r.Prefix, r.Connector, opts)
		if c.Bool("force") {
			a.warn(a.takenFrom(c, admin, r))
		}
		// Say so if an admin's split-tunnel entry keeps part of it out of the
		// tunnel.
		if eff, err := admin.EffectiveSplit(c.Context); err == nil {
			var mine []string
			for _, w := range eff.Warnings {
				if strings.Contains(w, r.Prefix.String()) {
					mine = append(mine, w)
				}
			}
			a.warn(mine)
		}
		return nil
	})
}

// takenFrom says whose traffic the route r, just added with --force, took:
// the longest other route covering it, if another connector has it.
func (a *app) takenFrom(c *cli.Context, admin *coordclient.Admin, r *wire.Route) []string {
	rs, err := admin.Routes(c.Context)
	if err != nil {
		return nil
	}
	var es []routes.Entry
	for _, o := range rs {
		if o.Prefix != r.Prefix {
			es = append(es, routes.Entry{Prefix: o.Prefix, Owner: o.Connector})
		}
	}
	tbl, err := routes.NewTable(es)
	if err != nil {
		return nil
	}
	from, ok := tbl.TakesFrom(r.Prefix, r.Connector)
	if !ok {
		return nil
	}
	return []string{fmt.Sprintf("%v takes traffic from route %v (connector %q): it now goes to connector %q", r.Prefix, from.Prefix, from.Owner, r.Connector)}
}

func (a *app) routesList(c *cli.Context) error {
	if err := argCount(c, 0, "[--json]"); err != nil {
		return err
	}
	return a.withAdmin(c, func(admin *coordclient.Admin) error {
		rs, err := admin.Routes(c.Context)
		if err != nil {
			return err
		}
		if c.Bool("json") {
			return a.printJSON(rs)
		}
		if len(rs) == 0 {
			fmt.Fprintln(a.env.Stdout, "no routes; add one with: warren routes add CIDR --connector NAME")
			return nil
		}
		w := tabwriter.NewWriter(a.env.Stdout, 0, 4, 2, ' ', 0)
		row(w, "PREFIX", "CONNECTOR", "PROXY", "CONNECTOR-HOST", "COMMENT")
		for _, r := range rs {
			proxy, host := "-", "-"
			if r.ProxyProtocol {
				proxy = "v2"
			}
			if r.AllowConnectorHost {
				host = "allowed"
			}
			row(w, r.Prefix, r.Connector, proxy, host, r.Comment)
		}
		return w.Flush()
	})
}

func (a *app) routesRemove(c *cli.Context) error {
	if err := argCount(c, 1, "CIDR"); err != nil {
		return err
	}
	p, err := routes.ParsePrefix(c.Args().First())
	if err != nil {
		return err
	}
	return a.withAdmin(c, func(admin *coordclient.Admin) error {
		if err := admin.DeleteRoute(c.Context, p); err != nil {
			return err
		}
		fmt.Fprintf(a.env.Stdout, "route %s removed\n", p)
		return nil
	})
}

func (a *app) routesGet(c *cli.Context) error {
	if err := argCount(c, 1, "IP"); err != nil {
		return err
	}
	arg := c.Args().First()
	ip, err := netip.ParseAddr(strings.TrimSpace(arg))
	if err != nil || ip.Zone() != "" {
		return fmt.Errorf("%q is not an IP address", arg)
	}
	return a.withAdmin(c, func(admin *coordclient.Admin) error {
		res, err := admin.LookupRoute(c.Context, ip)
		if err != nil {
			return err
		}
		if c.Bool("json") {
			return a.printJSON(res)
		}
		fmt.Fprintln(a.env.Stdout, res.Reason)
		return nil
	})
}
