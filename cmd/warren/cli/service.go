package cli

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/warrennet/warren/service"
)

func (a *app) serviceCommand() *cli.Command {
	flags := func() []cli.Flag {
		return []cli.Flag{
			&cli.BoolFlag{Name: "userspace", Usage: "the client in userspace mode as you (a user service, no root), not the TUN daemon as root"},
			&cli.BoolFlag{Name: "dry-run", Usage: "print what would be written and run, and change nothing"},
		}
	}
	return &cli.Command{
		Name:  "service",
		Usage: "run the daemon as a service of this machine (systemd, launchd): started at boot, restarted on failure",
		Subcommands: []*cli.Command{
			{
				Name:      "install",
				Usage:     "write the service file for this warren binary, enable and start it (root; --userspace: your own)",
				ArgsUsage: " ",
				Flags:     flags(),
				Action: func(c *cli.Context) error {
					if err := argCount(c, 0, "[--userspace] [--dry-run]"); err != nil {
						return err
					}
					h, o := a.serviceHost(), service.Options{Userspace: c.Bool("userspace"), DryRun: c.Bool("dry-run")}
					r, err := service.Install(c.Context, h, o)
					if err != nil {
						return err
					}
					a.printServiceSteps(r)
					switch {
					case o.DryRun && !o.Userspace && h.UID != 0:
						fmt.Fprintln(a.env.Stdout, "(installing it needs root: sudo warren service install)")
					case !o.DryRun:
						fmt.Fprintf(a.env.Stdout, "%s is installed, enabled and started: %s shows it; warren service uninstall%s removes it\n",
							r.Name, strings.Join(r.Status, " "), userspaceFlag(o))
					}
					return nil
				},
			},
			{
				Name:      "uninstall",
				Usage:     "stop and disable the service and remove the file warren service install wrote (root; --userspace: your own)",
				ArgsUsage: " ",
				Flags:     flags(),
				Action: func(c *cli.Context) error {
					if err := argCount(c, 0, "[--userspace] [--dry-run]"); err != nil {
						return err
					}
					o := service.Options{Userspace: c.Bool("userspace"), DryRun: c.Bool("dry-run")}
					r, err := service.Uninstall(c.Context, a.serviceHost(), o)
					if err != nil {
						return err
					}
					a.printServiceSteps(r)
					switch {
					case r.Change == service.Absent:
						fmt.Fprintf(a.env.Stdout, "%s is not installed (there is no %s): nothing to do\n", r.Name, r.Path)
					case !o.DryRun:
						fmt.Fprintf(a.env.Stdout, "%s is uninstalled\n", r.Name)
					}
					return nil
				},
			},
		},
	}
}

// serviceHost is the machine warren service acts on.
func (a *app) serviceHost() service.Host {
	if a.env.Service != nil {
		return *a.env.Service
	}
	return service.Local(a.env.Getenv)
}

// printServiceSteps says what was done, or with --dry-run what would be.
// A failure says itself what it changed before (service's errors do).
func (a *app) printServiceSteps(r service.Report) {
	w := a.env.Stdout
	if r.Change == service.Unchanged {
		fmt.Fprintf(w, "%s is up to date\n", r.Path)
	}
	for _, s := range r.Steps {
		switch {
		case s.Write != "" && r.DryRun:
			fmt.Fprintf(w, "would write %s:\n%s", s.Write, r.Text)
		case s.Write != "":
			fmt.Fprintf(w, "wrote %s\n", s.Write)
		case s.Remove != "" && r.DryRun:
			fmt.Fprintf(w, "would remove %s\n", s.Remove)
		case s.Remove != "":
			fmt.Fprintf(w, "removed %s\n", s.Remove)
		case r.DryRun:
			fmt.Fprintf(w, "would run: %s\n", strings.Join(s.Run, " "))
		default:
			fmt.Fprintf(w, "ran: %s\n", strings.Join(s.Run, " "))
		}
	}
}

func userspaceFlag(o service.Options) string {
	if o.Userspace {
		return " --userspace"
	}
	return ""
}
