package cli

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/warrennet/warren/overlay/coordclient"
	"github.com/warrennet/warren/overlay/wire"
)

func (a *app) usersCommand() *cli.Command {
	return &cli.Command{
		Name:  "users",
		Usage: "list and remove users: people who logged in by single sign-on, and users tokens name",
		Subcommands: []*cli.Command{
			{Name: "ls", Usage: "list users with their groups, nodes and last login", Flags: []cli.Flag{jsonFlag}, Action: a.usersList},
			{Name: "rm", Usage: "remove a user and every node of theirs at once", ArgsUsage: "EMAIL", Action: a.usersRemove},
		},
	}
}

func (a *app) usersList(c *cli.Context) error {
	if err := argCount(c, 0, "[--json]"); err != nil {
		return err
	}
	return a.withAdmin(c, func(admin *coordclient.Admin) error {
		users, err := admin.Users(c.Context)
		if err != nil {
			return err
		}
		if c.Bool("json") {
			return a.printJSON(users)
		}
		if len(users) == 0 {
			fmt.Fprintln(a.env.Stdout, "no users; people appear here once they log in (warren up), or a token names them (warren token create --user EMAIL)")
			return nil
		}
		now := time.Now()
		w := tabwriter.NewWriter(a.env.Stdout, 0, 4, 2, ' ', 0)
		row(w, "USER", "SOURCE", "GROUPS", "NODES", "LAST LOGIN", "STATUS")
		for _, u := range users {
			last, status := "-", "-"
			if u.LastLogin != nil {
				last = ago(now.Sub(*u.LastLogin))
			}
			switch {
			case u.Disabled:
				status = "disabled: " + u.Reason
			case u.ValidatedAt != nil:
				status = "validated " + ago(now.Sub(*u.ValidatedAt))
			}
			row(w, u.Email, u.Source, orDash(strings.Join(u.Groups, ",")), orDash(strings.Join(u.Nodes, ",")), last, status)
		}
		return w.Flush()
	})
}

func (a *app) usersRemove(c *cli.Context) error {
	if err := argCount(c, 1, "EMAIL"); err != nil {
		return err
	}
	email := c.Args().First()
	if err := wire.ValidateUser(email); err != nil {
		return err
	}
	return a.withAdmin(c, func(admin *coordclient.Admin) error {
		if err := admin.RemoveUser(c.Context, email); err != nil {
			return err
		}
		fmt.Fprintf(a.env.Stdout, "user %s removed, with every node of theirs\n", email)
		return nil
	})
}
