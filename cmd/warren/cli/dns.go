package cli

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/warrennet/warren/overlay/coordclient"
	"github.com/warrennet/warren/overlay/wire"
)

func (a *app) dnsCommand() *cli.Command {
	return &cli.Command{
		Name:  "dns",
		Usage: "resolve private domains with servers behind a connector (split DNS)",
		Subcommands: []*cli.Command{
			{
				Name:      "add",
				Usage:     "resolve names under DOMAIN with these servers (adding again replaces them); each must be inside a routed prefix",
				ArgsUsage: "DOMAIN --server IP [--server IP]...",
				Flags:     []cli.Flag{&cli.StringSliceFlag{Name: "server", Usage: "a DNS server's address (repeat for more, at most 8)"}},
				Action:    a.dnsAdd,
			},
			{Name: "ls", Usage: "list split-DNS domains", Flags: []cli.Flag{jsonFlag}, Action: a.dnsList},
			{Name: "rm", Usage: "stop resolving a domain through the tunnel", ArgsUsage: "DOMAIN", Action: a.dnsRemove},
		},
	}
}

func (a *app) dnsAdd(c *cli.Context) error {
	const usage = "DOMAIN --server IP [--server IP]..."
	if err := argCount(c, 1, usage); err != nil {
		return err
	}
	servers := c.StringSlice("server")
	if len(servers) == 0 {
		return fmt.Errorf("usage: warren %s %s", commandPath(c), usage)
	}
	// Checked here too, so a typo needs no coordinator to be caught.
	if _, err := wire.CanonicalDomain(c.Args().First()); err != nil {
		return err
	}
	return a.withAdmin(c, func(admin *coordclient.Admin) error {
		d, err := admin.SetDNS(c.Context, wire.SetDNSRequest{Domain: c.Args().First(), Servers: servers})
		if err != nil {
			return err
		}
		fmt.Fprintf(a.env.Stdout, "dns %s → %s\n", d.Domain, joinAddrs(d))
		return nil
	})
}

func joinAddrs(d *wire.DNSDomain) string {
	s := make([]string, len(d.Servers))
	for i, a := range d.Servers {
		s[i] = a.String()
	}
	return strings.Join(s, ", ")
}

func (a *app) dnsList(c *cli.Context) error {
	if err := argCount(c, 0, "[--json]"); err != nil {
		return err
	}
	return a.withAdmin(c, func(admin *coordclient.Admin) error {
		ds, err := admin.DNS(c.Context)
		if err != nil {
			return err
		}
		if c.Bool("json") {
			return a.printJSON(ds)
		}
		if len(ds) == 0 {
			fmt.Fprintln(a.env.Stdout, "no dns domains; add one with: warren dns add DOMAIN --server IP")
			return nil
		}
		w := tabwriter.NewWriter(a.env.Stdout, 0, 4, 2, ' ', 0)
		row(w, "DOMAIN", "SERVERS")
		for i := range ds {
			row(w, ds[i].Domain, joinAddrs(&ds[i]))
		}
		return w.Flush()
	})
}

func (a *app) dnsRemove(c *cli.Context) error {
	if err := argCount(c, 1, "DOMAIN"); err != nil {
		return err
	}
	return a.withAdmin(c, func(admin *coordclient.Admin) error {
		domain := c.Args().First()
		if err := admin.RemoveDNS(c.Context, domain); err != nil {
			return err
		}
		d, err := wire.CanonicalDomain(domain)
		if err != nil {
			d = domain
		}
		fmt.Fprintf(a.env.Stdout, "dns %s removed\n", d)
		return nil
	})
}
