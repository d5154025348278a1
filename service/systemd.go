package service

import (
	"errors"
	"path/filepath"

	"github.com/warrennet/warren/dist"
)

// systemd installs a system unit (/etc/systemd/system) or a user unit
// ($XDG_CONFIG_HOME/systemd/user), both named warren.service.
type systemd struct{}

const systemdUnit = "warren.service"

func (systemd) file(o Options) string {
	if o.Userspace {
		return dist.SystemdUser
	}
	return dist.SystemdSystem
}

func (systemd) path(h Host, o Options) (string, error) {
	if !o.Userspace {
		return "/etc/systemd/system/" + systemdUnit, nil
	}
	dir, err := configHome(h)
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "systemd", "user", systemdUnit), nil
}

// configHome is where the user manager looks for the user's units.
func configHome(h Host) (string, error) {
	if filepath.IsAbs(h.ConfigHome) {
		return filepath.Clean(h.ConfigHome), nil
	}
	if !filepath.IsAbs(h.Home) {
		return "", errors.New("no home directory to install a user service in: HOME is not set")
	}
	return filepath.Join(filepath.Clean(h.Home), ".config"), nil
}

func (systemd) name(Options) string { return systemdUnit }

func systemctl(o Options, args ...string) Step {
	if o.Userspace {
		args = append([]string{"--user"}, args...)
	}
	return Step{Run: append([]string{"systemctl"}, args...)}
}

// start: a new or rewritten unit is loaded first; a rewritten one (a
// new binary path) is restarted to run it; an unchanged one is only made
// sure of, so a running service keeps running.
func (systemd) start(_ Host, o Options, _ string, c Change) []Step {
	switch c {
	case Created:
		return []Step{systemctl(o, "daemon-reload"), systemctl(o, "enable", "--now", systemdUnit)}
	case Replaced:
		return []Step{systemctl(o, "daemon-reload"), systemctl(o, "enable", systemdUnit), systemctl(o, "restart", systemdUnit)}
	}
	return []Step{systemctl(o, "enable", "--now", systemdUnit)}
}

func (systemd) stop(_ Host, o Options, _ string) (before, after []Step) {
	return []Step{systemctl(o, "disable", "--now", systemdUnit)}, []Step{systemctl(o, "daemon-reload")}
}

func (systemd) status(_ Host, o Options) []string {
	return systemctl(o, "status", "warren").Run
}
