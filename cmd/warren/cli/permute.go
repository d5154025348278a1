package cli

import (
	"strings"

	"github.com/urfave/cli/v2"
)

// Permute reorders args so urfave/cli sees every flag where it expects it:
// global flags before the command, the command's own flags right after its
// name, positional arguments last. urfave/cli v2 stops parsing flags at the
// first positional argument, so without this `routes add CIDR --connector
// NAME` would treat "--connector" as an argument.
//
// A flag unknown to both the command and the app stays with the command,
// where urfave reports it. Everything after "--" is positional.
func Permute(app *cli.App, args []string) []string {
	if len(args) < 2 {
		return args
	}
	var global, chain, local, pos []string
	cmds := app.Commands
	var leaf *cli.Command
	for i := 1; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		if strings.HasPrefix(a, "-") && a != "-" {
			name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
			f, isGlobal := lookupFlag(name, leaf, app.Flags)
			dst := &local
			if isGlobal || (f == nil && leaf == nil) {
				dst = &global
			}
			*dst = append(*dst, a)
			if f != nil && !hasValue && takesValue(f) && i+1 < len(args) {
				i++
				*dst = append(*dst, args[i])
			}
			continue
		}
		if len(pos) == 0 {
			if c := findCommand(cmds, a); c != nil {
				chain = append(chain, a)
				leaf, cmds = c, c.Subcommands
				continue
			}
		}
		pos = append(pos, a)
	}
	out := append([]string{args[0]}, global...)
	out = append(out, chain...)
	out = append(out, local...)
	if len(pos) > 0 {
		out = append(out, "--")
	}
	return append(out, pos...)
}

// lookupFlag finds a flag by name, preferring the command's own.
func lookupFlag(name string, leaf *cli.Command, global []cli.Flag) (f cli.Flag, isGlobal bool) {
	if leaf != nil {
		if f := findFlag(leaf.Flags, name); f != nil {
			return f, false
		}
	}
	if f := findFlag(global, name); f != nil {
		return f, true
	}
	return nil, false
}

func findFlag(flags []cli.Flag, name string) cli.Flag {
	for _, f := range flags {
		for _, n := range f.Names() {
			if n == name {
				return f
			}
		}
	}
	return nil
}

func findCommand(cmds []*cli.Command, name string) *cli.Command {
	for _, c := range cmds {
		if c.HasName(name) {
			return c
		}
	}
	return nil
}

func takesValue(f cli.Flag) bool {
	tv, ok := f.(cli.DocGenerationFlag)
	return ok && tv.TakesValue()
}
