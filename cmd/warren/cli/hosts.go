package cli

import (
	"fmt"
	"net/netip"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/warrennet/warren/overlay/coordclient"
	"github.com/warrennet/warren/overlay/wire"
)

func (a *app) hostsCommand() *cli.Command {
	return &cli.Command{
		Name:  "hosts",
		Usage: "name the addresses access-policy rules may use by name",
		Subcommands: []*cli.Command{
			{
				Name:      "add",
				Usage:     "name an address",
				ArgsUsage: "NAME IP",
				Flags:     []cli.Flag{&cli.StringFlag{Name: "comment", Usage: "a note shown in hosts ls"}},
				Action:    a.hostsAdd,
			},
			{Name: "ls", Usage: "list named hosts", Flags: []cli.Flag{jsonFlag}, Action: a.hostsList},
			{Name: "rm", Usage: "remove a named host (refused while the access policy names it)", ArgsUsage: "NAME", Action: a.hostsRemove},
		},
	}
}

func (a *app) hostsAdd(c *cli.Context) error {
	if err := argCount(c, 2, "NAME IP [--comment TEXT]"); err != nil {
		return err
	}
	name, addr := c.Args().Get(0), c.Args().Get(1)
	// Checked here too, so a typo needs no coordinator to be caught.
	if err := wire.ValidateName(name); err != nil {
		return fmt.Errorf("host %w", err)
	}
	if ip, err := netip.ParseAddr(strings.TrimSpace(addr)); err != nil || ip.Zone() != "" {
		return fmt.Errorf("%q is not an IP address (for example 192.168.0.10)", addr)
	}
	return a.withAdmin(c, func(admin *coordclient.Admin) error {
		h, err := admin.AddHost(c.Context, wire.AddHostRequest{Name: name, Address: addr, Comment: c.String("comment")})
		if err != nil {
			return err
		}
		fmt.Fprintf(a.env.Stdout, "host %s → %s\n", h.Name, h.Address)
		return nil
	})
}

func (a *app) hostsList(c *cli.Context) error {
	if err := argCount(c, 0, "[--json]"); err != nil {
		return err
	}
	return a.withAdmin(c, func(admin *coordclient.Admin) error {
		hs, err := admin.Hosts(c.Context)
		if err != nil {
			return err
		}
		if c.Bool("json") {
			return a.printJSON(hs)
		}
		if len(hs) == 0 {
			fmt.Fprintln(a.env.Stdout, "no hosts; name one with: warren hosts add NAME IP")
			return nil
		}
		w := tabwriter.NewWriter(a.env.Stdout, 0, 4, 2, ' ', 0)
		row(w, "NAME", "ADDRESS", "COMMENT")
		for _, h := range hs {
			row(w, h.Name, h.Address, h.Comment)
		}
		return w.Flush()
	})
}

func (a *app) hostsRemove(c *cli.Context) error {
	if err := argCount(c, 1, "NAME"); err != nil {
		return err
	}
	return a.withAdmin(c, func(admin *coordclient.Admin) error {
		name := c.Args().First()
		if err := admin.RemoveHost(c.Context, name); err != nil {
			return err
		}
		fmt.Fprintf(a.env.Stdout, "host %s removed\n", name)
		return nil
	})
}
