// Package service installs warren as a service of the host's service
// manager and removes it again: systemd on Linux (a system unit running
// the TUN daemon as root, or a user unit running userspace mode as the
// user), launchd on macOS (a LaunchDaemon, or a LaunchAgent). Elsewhere
// it says it is not supported yet.
//
// The file it writes is dist's text with the running binary's path put
// in; a file it did not write (one without dist.Marker) it neither
// replaces nor removes. Install is idempotent: a second one rewrites
// nothing and leaves a running service alone. Everything touches the host
// through Host: files only under Host.Root, programs (systemctl,
// launchctl) only through Host.Run, so tests install into a temporary
// directory and enable nothing.
//
// What each manager writes and runs (systemd.go, launchd.go) is plain
// code, tested on any system; native_*.go only picks the one this system
// has. service is a mechanism: it reads no flags, environment or signals
// (Local's caller passes the environment in) and among Warren packages
// imports only dist and overlay/atomicfile.
package service

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/warrennet/warren/dist"
	"github.com/warrennet/warren/overlay/atomicfile"
)

// Errors callers may branch on.
var (
	// ErrNotSupported: this system has no service manager warren knows.
	ErrNotSupported = errors.New("warren service is not supported")
	// ErrNeedsRoot: the system service is installed and removed by root only.
	ErrNeedsRoot = errors.New("needs root")
	// ErrNotOurs: a file is where the service file goes, and warren did
	// not write it.
	ErrNotOurs = errors.New("not written by warren service install")
)

// Runner runs the service manager's programs.
type Runner interface {
	// Run runs name with args and waits for it to exit. It returns what
	// the program printed (stdout and stderr), and an error when it
	// could not start or exited with a non-zero status.
	Run(ctx context.Context, name string, args ...string) ([]byte, error)
}

// Exec runs programs on this machine.
type Exec struct{}

// Run implements Runner with os/exec.
func (Exec) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	return exec.CommandContext(ctx, name, args...).CombinedOutput()
}

// Host is the machine a service is installed on.
type Host struct {
	// Root is put in front of every path read or written; "" is the
	// real file system. Paths in a Report are the host's, without it.
	Root string
	// UID is the caller's effective user ID: the system service needs 0,
	// a userspace one anyone but root.
	UID int
	// Home is the caller's home directory; ConfigHome is
	// $XDG_CONFIG_HOME, "" for Home/.config.
	Home, ConfigHome string
	// Executable is the absolute path of the warren binary the service
	// runs: the one installing it.
	Executable string
	// Run runs systemctl or launchctl.
	Run Runner
}

// Local is this machine, with getenv reading its environment (HOME,
// XDG_CONFIG_HOME).
func Local(getenv func(string) string) Host {
	exe, _ := os.Executable() // "" is refused by Install with a message
	return Host{UID: os.Geteuid(), Home: getenv("HOME"), ConfigHome: getenv("XDG_CONFIG_HOME"), Executable: exe, Run: Exec{}}
}

// Options say which service.
type Options struct {
	// Userspace is the client in userspace mode as the caller, else the
	// TUN daemon as root.
	Userspace bool
	// DryRun plans only: it writes, removes and runs nothing.
	DryRun bool
}

// Change is what Install or Uninstall did to the service file.
type Change int

// Changes.
const (
	Created   Change = iota + 1 // written where there was none
	Replaced                    // an older one of ours rewritten
	Unchanged                   // ours already, byte for byte
	Removed                     // ours, removed
	Absent                      // none to remove
)

// Step is one thing done, in order: the file at Write written, the file
// at Remove removed, or the program Run run.
type Step struct {
	Write, Remove string
	Run           []string
	// MayFail marks a command whose failure is expected at times and
	// ignored (launchctl bootout of a service that is not loaded).
	MayFail bool
}

// Report says what Install or Uninstall did, or with DryRun would do.
type Report struct {
	// Path is the service file on the host; Name the unit or label.
	Path, Name string
	// Text is the file's content as installed (Install only).
	Text   []byte
	Change Change
	Steps  []Step
	// Status is the command that shows the service's state.
	Status []string
	DryRun bool
}

// manager is one service manager: what it installs where, and what it
// runs around writing and removing the file.
type manager interface {
	// file is dist's file for the service.
	file(o Options) string
	// path is where the service file goes on h.
	path(h Host, o Options) (string, error)
	name(o Options) string
	// start is what runs after the file was written (or found
	// unchanged) to have the service enabled and running.
	start(h Host, o Options, path string, c Change) []Step
	// stop is what runs before the file is removed, and after.
	stop(h Host, o Options, path string) (before, after []Step)
	status(h Host, o Options) []string
}

// Install writes the service file for o and enables and starts the
// service. A second Install finds the file unchanged and only makes sure
// the service is enabled and running. With o.DryRun it changes nothing.
func Install(ctx context.Context, h Host, o Options) (Report, error) {
	m, err := native()
	if err != nil {
		return Report{}, err
	}
	return install(ctx, m, h, o)
}

// Uninstall stops and disables the service and removes the file Install
// wrote, and nothing else. With no file it does nothing.
func Uninstall(ctx context.Context, h Host, o Options) (Report, error) {
	m, err := native()
	if err != nil {
		return Report{}, err
	}
	return uninstall(ctx, m, h, o)
}

func install(ctx context.Context, m manager, h Host, o Options) (Report, error) {
	if err := checkCaller(h, o, "installing"); err != nil {
		return Report{}, err
	}
	if err := checkExecutable(h.Executable); err != nil {
		return Report{}, err
	}
	text, err := Render(m.file(o), h.Executable)
	if err != nil {
		return Report{}, err
	}
	path, err := m.path(h, o)
	if err != nil {
		return Report{}, err
	}
	r := Report{Path: path, Name: m.name(o), Text: text, Status: m.status(h, o), DryRun: o.DryRun}
	old, err := readOurs(h, path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		r.Change = Created
	case err != nil:
		return Report{}, err
	case bytes.Equal(old, text):
		r.Change = Unchanged
	default:
		r.Change = Replaced
	}
	if r.Change != Unchanged {
		r.Steps = append(r.Steps, Step{Write: path})
	}
	r.Steps = append(r.Steps, m.start(h, o, path, r.Change)...)
	if o.DryRun {
		return r, nil
	}
	return r, do(ctx, h, r.Steps, text, old)
}

func uninstall(ctx context.Context, m manager, h Host, o Options) (Report, error) {
	if err := checkCaller(h, o, "removing"); err != nil {
		return Report{}, err
	}
	path, err := m.path(h, o)
	if err != nil {
		return Report{}, err
	}
	r := Report{Path: path, Name: m.name(o), Status: m.status(h, o), DryRun: o.DryRun}
	switch _, err := readOurs(h, path); {
	case errors.Is(err, fs.ErrNotExist):
		r.Change = Absent
		return r, nil
	case err != nil:
		return Report{}, err
	}
	r.Change = Removed
	before, after := m.stop(h, o, path)
	r.Steps = append(append(before, Step{Remove: path}), after...)
	if o.DryRun {
		return r, nil
	}
	return r, do(ctx, h, r.Steps, nil, nil)
}

// checkCaller refuses the system service to anyone but root, and a
// userspace one to root (it would be root's own, in root's home).
func checkCaller(h Host, o Options, doing string) error {
	switch {
	case o.Userspace && h.UID == 0:
		return errors.New("--userspace is a service of the user who runs it, and this is root: run it as that user, without sudo")
	case !o.Userspace && h.UID != 0 && !o.DryRun:
		return fmt.Errorf("%s the system service %w: run it with sudo, or use --userspace for a service of your own without root", doing, ErrNeedsRoot)
	}
	return nil
}

// checkExecutable refuses a binary path the service file could not hold
// as it is, or that the service could not run from.
func checkExecutable(p string) error {
	if p == "" {
		return errors.New("cannot tell where the warren binary is")
	}
	if !filepath.IsAbs(p) || filepath.Clean(p) != p {
		return fmt.Errorf("the warren binary's path %q is not absolute and clean", p)
	}
	for _, c := range p {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("/._+-@", c)) {
			return fmt.Errorf("the warren binary's path %q has a character a service file would have to quote: install warren at a plain path such as %s", p, dist.Executable)
		}
	}
	for _, tmp := range []string{"/tmp/", "/var/tmp/"} {
		if strings.HasPrefix(p, tmp) {
			return fmt.Errorf("the warren binary %s is in %s, which a service does not see (PrivateTmp) and which is emptied: install warren at a lasting path such as %s first", p, tmp, dist.Executable)
		}
	}
	return nil
}

// Render is dist's file name with exe as the warren binary.
func Render(name, exe string) ([]byte, error) {
	b, err := dist.Files.ReadFile(name)
	if err != nil {
		return nil, err
	}
	if n := bytes.Count(b, []byte(dist.Executable)); n != 1 {
		return nil, fmt.Errorf("dist/%s names %s %d times, not once", name, dist.Executable, n)
	}
	return bytes.Replace(b, []byte(dist.Executable), []byte(exe), 1), nil
}

// readOurs reads the service file at path, which must be ours: a regular
// file holding dist.Marker. A missing one is fs.ErrNotExist.
func readOurs(h Host, path string) ([]byte, error) {
	full := filepath.Join(h.Root, path)
	fi, err := os.Lstat(full)
	if err != nil {
		return nil, err
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		return nil, fmt.Errorf("%s is a symbolic link (a masked or linked service?), %w: remove it first", path, ErrNotOurs)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file, so %w", path, ErrNotOurs)
	}
	b, err := os.ReadFile(full)
	if err != nil {
		return nil, err
	}
	if !bytes.Contains(b, []byte(dist.Marker)) {
		return nil, fmt.Errorf("%s is %w: move it away first", path, ErrNotOurs)
	}
	return b, nil
}

// do takes the steps, stopping at the first that fails; its error says
// what was changed before it. A service manager that fails the first
// command after the file was written (systemd not running, no user bus)
// has nothing of ours yet: the file is put back as it was (old; nil for
// none), so a failed install leaves nothing behind.
func do(ctx context.Context, h Host, steps []Step, text, old []byte) error {
	done := ""
	var undo func() string
	for _, s := range steps {
		switch {
		case s.Write != "":
			full := filepath.Join(h.Root, s.Write)
			if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
				return fmt.Errorf("writing %s: %w", s.Write, err)
			}
			if err := atomicfile.WriteFile(full, text, 0o644); err != nil {
				return fmt.Errorf("writing %s: %w", s.Write, err)
			}
			done = " (" + s.Write + " is written; warren service uninstall removes it)"
			undo = func() string {
				if old == nil {
					if err := os.Remove(full); err != nil {
						return " (" + s.Write + " is written; removing it again: " + err.Error() + ")"
					}
					return " (nothing is installed)"
				}
				if err := atomicfile.WriteFile(full, old, 0o644); err != nil {
					return " (" + s.Write + " is rewritten; putting the old one back: " + err.Error() + ")"
				}
				return " (" + s.Write + " is as it was)"
			}
		case s.Remove != "":
			if err := os.Remove(filepath.Join(h.Root, s.Remove)); err != nil {
				return fmt.Errorf("removing %s: %w", s.Remove, err)
			}
			done = " (" + s.Remove + " is removed)"
		default:
			out, err := h.Run.Run(ctx, s.Run[0], s.Run[1:]...)
			switch {
			case err != nil && s.MayFail:
			case err != nil && undo != nil:
				return fmt.Errorf("%s: %w%s%s", strings.Join(s.Run, " "), err, firstLine(out), undo())
			case err != nil:
				return fmt.Errorf("%s: %w%s%s", strings.Join(s.Run, " "), err, firstLine(out), done)
			default:
				undo = nil
			}
		}
	}
	return nil
}

// firstLine is ": " and the first non-empty line of out, or "".
func firstLine(out []byte) string {
	for l := range strings.Lines(string(out)) {
		if l = strings.TrimSpace(l); l != "" {
			return ": " + l
		}
	}
	return ""
}
