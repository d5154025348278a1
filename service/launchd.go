package service

import (
	"errors"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/warrennet/warren/dist"
)

// launchd installs a LaunchDaemon (/Library/LaunchDaemons, domain
// system) or a LaunchAgent (~/Library/LaunchAgents, domain gui/UID),
// each named after its label.
type launchd struct{}

func (launchd) file(o Options) string {
	if o.Userspace {
		return dist.LaunchdUserspace
	}
	return dist.LaunchdDaemon
}

func (l launchd) name(o Options) string {
	return strings.TrimSuffix(filepath.Base(l.file(o)), ".plist")
}

func (l launchd) path(h Host, o Options) (string, error) {
	if !o.Userspace {
		return "/Library/LaunchDaemons/" + l.name(o) + ".plist", nil
	}
	if !filepath.IsAbs(h.Home) {
		return "", errors.New("no home directory to install a user service in: HOME is not set")
	}
	return filepath.Join(filepath.Clean(h.Home), "Library", "LaunchAgents", l.name(o)+".plist"), nil
}

func domain(h Host, o Options) string {
	if o.Userspace {
		return "gui/" + strconv.Itoa(h.UID)
	}
	return "system"
}

func launchctl(mayFail bool, args ...string) Step {
	return Step{Run: append([]string{"launchctl"}, args...), MayFail: mayFail}
}

// start: launchd loads a property list once (bootstrap); a rewritten one
// is unloaded first (bootout, which fails when it was not loaded), and an
// unchanged one is bootstrapped in case it is not loaded (which fails
// when it is) and then started if it is not running (kickstart).
func (l launchd) start(h Host, o Options, path string, c Change) []Step {
	d := domain(h, o)
	target := d + "/" + l.name(o)
	switch c {
	case Created:
		return []Step{launchctl(false, "enable", target), launchctl(false, "bootstrap", d, path)}
	case Replaced:
		return []Step{launchctl(true, "bootout", target), launchctl(false, "enable", target), launchctl(false, "bootstrap", d, path)}
	}
	return []Step{launchctl(false, "enable", target), launchctl(true, "bootstrap", d, path), launchctl(false, "kickstart", target)}
}

func (l launchd) stop(h Host, o Options, _ string) (before, after []Step) {
	return []Step{launchctl(true, "bootout", domain(h, o)+"/"+l.name(o))}, nil
}

func (l launchd) status(h Host, o Options) []string {
	return launchctl(false, "print", domain(h, o)+"/"+l.name(o)).Run
}
