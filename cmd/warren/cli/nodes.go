package cli

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/warrennet/warren/overlay/coordclient"
)

func (a *app) nodesCommand() *cli.Command {
	return &cli.Command{
		Name:  "nodes",
		Usage: "list and remove enrolled nodes",
		Subcommands: []*cli.Command{
			{Name: "ls", Usage: "list nodes", Flags: []cli.Flag{jsonFlag}, Action: a.nodesList},
			{Name: "rm", Usage: "remove a node: its credential stops working at once and it leaves every peer's netmap", ArgsUsage: "NAME", Action: a.nodesRemove},
		},
	}
}

func (a *app) nodesList(c *cli.Context) error {
	if err := argCount(c, 0, "[--json]"); err != nil {
		return err
	}
	return a.withAdmin(c, func(admin *coordclient.Admin) error {
		nodes, err := admin.Nodes(c.Context)
		if err != nil {
			return err
		}
		if c.Bool("json") {
			return a.printJSON(nodes)
		}
		if len(nodes) == 0 {
			fmt.Fprintln(a.env.Stdout, "no nodes; enroll one with a token from: warren token create --role client|connector --name NAME")
			return nil
		}
		// An older coordinator has no access policy to report.
		if doc, err := admin.Policy(c.Context); err == nil {
			fmt.Fprintln(a.env.Stdout, policyNote(doc))
		}
		now := time.Now()
		w := tabwriter.NewWriter(a.env.Stdout, 0, 4, 2, ' ', 0)
		row(w, "NAME", "ROLE", "USER", "ADDRESS", "ONLINE", "LAST SEEN", "NETMAP")
		for _, n := range nodes {
			online, seen, netmap := "no", "never", "-"
			if n.Online {
				online = "yes"
			}
			if n.LastSeen != nil {
				seen = ago(now.Sub(*n.LastSeen))
			}
			if n.AppliedVersion > 0 {
				netmap = fmt.Sprintf("v%d", n.AppliedVersion)
				if n.Online && !n.InSync {
					netmap += " (update pending)"
				}
			}
			row(w, n.Name, n.Role, orDash(n.User), n.Address, online, seen, netmap)
		}
		return w.Flush()
	})
}

// ago says how long ago, roughly, for a person.
func ago(d time.Duration) string {
	switch {
	case d < 5*time.Second:
		return "just now"
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return fmt.Sprintf("%dd ago", int(d.Hours()/24))
}

func (a *app) nodesRemove(c *cli.Context) error {
	if err := argCount(c, 1, "NAME"); err != nil {
		return err
	}
	return a.withAdmin(c, func(admin *coordclient.Admin) error {
		name := c.Args().First()
		if err := admin.RemoveNode(c.Context, name); err != nil {
			return err
		}
		fmt.Fprintf(a.env.Stdout, "node %s removed\n", name)
		return nil
	})
}
