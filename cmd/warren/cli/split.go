package cli

import (
	"errors"
	"fmt"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/warrennet/warren/overlay/coordclient"

	"github.com/warrennet/warren/overlay/wire"
	"github.com/warrennet/warren/routes"
)

func (a *app) splitCommand() *cli.Command {
	return &cli.Command{
		Name:  "split",
		Usage: "the split-tunnel policy: which routed prefixes clients send into the tunnel",
		Subcommands: []*cli.Command{
			{Name: "mode", Usage: "tunnel everything routed except the exclude list, or only the include list (each mode keeps its list)", ArgsUsage: "include|exclude", Action: a.splitMode},
			{Name: "add", Usage: "add a prefix to the current mode's list", ArgsUsage: "CIDR", Flags: []cli.Flag{&cli.StringFlag{Name: "comment", Usage: "why the entry is there"}}, Action: a.splitAdd},
			{Name: "rm", Usage: "remove a prefix from the current mode's list", ArgsUsage: "CIDR", Action: a.splitRemove},
			{Name: "ls", Usage: "show the mode and both lists", Flags: []cli.Flag{jsonFlag}, Action: a.splitList},
			{Name: "reset", Usage: "back to the defaults: exclude mode, the default exclude list, an empty include list", Action: a.splitReset},
			{Name: "show", Usage: "with --effective: what a client tunnels under the current policy and routes, and why", Flags: []cli.Flag{
				&cli.BoolFlag{Name: "effective", Usage: "show the effective result"}, jsonFlag,
			}, Action: a.splitShow},
		},
	}
}

func (a *app) splitMode(c *cli.Context) error {
	if err := argCount(c, 1, "include|exclude"); err != nil {
		return err
	}
	mode := wire.SplitMode(c.Args().First())
	if mode != wire.SplitInclude && mode != wire.SplitExclude {
		return fmt.Errorf("split mode %q is not one of: include, exclude", c.Args().First())
	}
	return a.withAdmin(c, func(admin *coordclient.Admin) error {
		resp, err := admin.SetSplitMode(c.Context, mode)
		if err != nil {
			return err
		}
		p := resp.Policy
		fmt.Fprintf(a.env.Stdout, "split mode %s: include list %d entries, exclude list %d entries (both kept)\n", p.Mode, len(p.Include), len(p.Exclude))
		a.warn(resp.Warnings)
		return nil
	})
}

func (a *app) splitAdd(c *cli.Context) error {
	if err := argCount(c, 1, "CIDR [--comment TEXT]"); err != nil {
		return err
	}
	p, err := routes.ParsePrefix(c.Args().First())
	if err != nil {
		return err
	}
	return a.withAdmin(c, func(admin *coordclient.Admin) error {
		resp, err := admin.AddSplitEntry(c.Context, wire.SplitEntryRequest{Prefix: p.String(), Comment: c.String("comment")})
		if err != nil {
			return err
		}
		fmt.Fprintf(a.env.Stdout, "%s added to the %s list\n", p, resp.Policy.Mode)
		a.warn(resp.Warnings)
		return nil
	})
}

func (a *app) splitRemove(c *cli.Context) error {
	if err := argCount(c, 1, "CIDR"); err != nil {
		return err
	}
	p, err := routes.ParsePrefix(c.Args().First())
	if err != nil {
		return err
	}
	return a.withAdmin(c, func(admin *coordclient.Admin) error {
		resp, err := admin.RemoveSplitEntry(c.Context, p)
		if err != nil {
			return err
		}
		fmt.Fprintf(a.env.Stdout, "%s removed from the %s list\n", p, resp.Policy.Mode)
		a.warn(resp.Warnings)
		return nil
	})
}

func (a *app) splitReset(c *cli.Context) error {
	if err := argCount(c, 0, ""); err != nil {
		return err
	}
	return a.withAdmin(c, func(admin *coordclient.Admin) error {
		resp, err := admin.ResetSplit(c.Context)
		if err != nil {
			return err
		}
		fmt.Fprintf(a.env.Stdout, "split policy reset: exclude mode, %d default exclude entries, empty include list\n", len(resp.Policy.Exclude))
		a.warn(resp.Warnings)
		return nil
	})
}

func (a *app) splitList(c *cli.Context) error {
	if err := argCount(c, 0, "[--json]"); err != nil {
		return err
	}
	return a.withAdmin(c, func(admin *coordclient.Admin) error {
		p, err := admin.SplitPolicy(c.Context)
		if err != nil {
			return err
		}
		if c.Bool("json") {
			return a.printJSON(p)
		}
		fmt.Fprintf(a.env.Stdout, "mode: %s\n\n", p.Mode)
		w := tabwriter.NewWriter(a.env.Stdout, 0, 4, 2, ' ', 0)
		for _, l := range []struct {
			name    string
			entries []wire.SplitEntry
		}{{"INCLUDE", p.Include}, {"EXCLUDE", p.Exclude}} {
			active := ""
			if (p.Mode == wire.SplitInclude) == (l.name == "INCLUDE") {
				active = " (active)"
			}
			row(w, l.name+active, "COMMENT")
			if len(l.entries) == 0 {
				fmt.Fprintln(w, "(empty)\t")
			}
			for _, e := range l.entries {
				comment := e.Comment
				if e.Builtin {
					comment += " [default]"
				}
				row(w, e.Prefix, comment)
			}
			fmt.Fprintln(w, "\t")
		}
		return w.Flush()
	})
}

func (a *app) splitShow(c *cli.Context) error {
	if err := argCount(c, 0, "--effective [--json]"); err != nil {
		return err
	}
	if !c.Bool("effective") {
		return errors.New("usage: warren split show --effective [--json] (for the lists: warren split ls)")
	}
	return a.withAdmin(c, func(admin *coordclient.Admin) error {
		e, err := admin.EffectiveSplit(c.Context)
		if err != nil {
			return err
		}
		if c.Bool("json") {
			return a.printJSON(e)
		}
		w := tabwriter.NewWriter(a.env.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintf(w, "mode: %s\n\n", e.Mode)
		row(w, "TUNNELLED", "CONNECTOR", "WHY")
		if len(e.Tunnel) == 0 {
			fmt.Fprintln(w, "(nothing)\t\t")
		}
		for _, d := range e.Tunnel {
			row(w, d.Prefix, d.Connector, d.Reason)
		}
		if len(e.Bypass) > 0 {
			fmt.Fprintln(w, "\t\t")
			row(w, "ROUTED BUT BYPASSED", "CONNECTOR", "WHY")
			for _, d := range e.Bypass {
				row(w, d.Prefix, d.Connector, d.Reason)
			}
		}
		if err := w.Flush(); err != nil {
			return err
		}
		a.warn(e.Warnings)
		return nil
	})
}

// warn prints warnings on stderr, one line each.
func (a *app) warn(ws []string) {
	for _, w := range ws {
		fmt.Fprintln(a.env.Stderr, "warning: "+w)
	}
}
