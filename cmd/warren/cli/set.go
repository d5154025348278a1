package cli

import (
	"errors"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/warrennet/warren/overlay/ctl"
)

func (a *app) setCommand() *cli.Command {
	return &cli.Command{
		Name:      "set",
		Usage:     "change daemon settings; only the flags given change",
		ArgsUsage: " ",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "lan-wins", Usage: "let this machine's LANs win over tunnelled prefixes that overlap them (default: the tunnel wins)"},
			&cli.StringFlag{Name: "operator", Usage: "the local USER who may, besides root, read the status and get ssh certificates (\"\" clears; root only)"},
		},
		Action: func(c *cli.Context) error {
			if err := argCount(c, 0, "[--lan-wins[=true|false]] [--operator USER]"); err != nil {
				return err
			}
			var edit ctl.PrefsEdit
			if c.IsSet("lan-wins") {
				v := c.Bool("lan-wins")
				edit.LANWins = &v
			}
			if c.IsSet("operator") {
				v := c.String("operator")
				edit.Operator = &v
			}
			if edit == (ctl.PrefsEdit{}) {
				return errors.New("nothing to set: give a setting, e.g. warren set --lan-wins")
			}
			cl := ctl.NewClient(a.socket(c))
			defer cl.Close()
			p, err := cl.EditPrefs(c.Context, edit)
			if err != nil {
				return err
			}
			line := fmt.Sprintf("lan-wins=%v", p.LANWins)
			if p.Operator != nil {
				line += fmt.Sprintf(" operator=%s (uid %d)", p.Operator.Name, p.Operator.UID)
			}
			fmt.Fprintln(a.env.Stdout, line)
			return nil
		},
	}
}
