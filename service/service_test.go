package service

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/warrennet/warren/dist"
	"github.com/warrennet/warren/internal/testutil"
)

// fakeRunner records the commands it is given and fails those whose
// line is in fail, printing the value.
type fakeRunner struct {
	ran  []string
	fail map[string]string
}

func (f *fakeRunner) Run(_ context.Context, name string, args ...string) ([]byte, error) {
	line := strings.Join(append([]string{name}, args...), " ")
	f.ran = append(f.ran, line)
	if out, ok := f.fail[line]; ok {
		return []byte(out), errors.New("exit status 1")
	}
	return nil, nil
}

const exe = "/opt/warren/bin/warren"

func testHost(t *testing.T, uid int) (Host, *fakeRunner) {
	t.Helper()
	r := &fakeRunner{}
	return Host{Root: t.TempDir(), UID: uid, Home: "/home/alice", Executable: exe, Run: r}, r
}

func steps(r Report) []string {
	var s []string
	for _, st := range r.Steps {
		switch {
		case st.Write != "":
			s = append(s, "write "+st.Write)
		case st.Remove != "":
			s = append(s, "remove "+st.Remove)
		case st.MayFail:
			s = append(s, strings.Join(st.Run, " ")+" (may fail)")
		default:
			s = append(s, strings.Join(st.Run, " "))
		}
	}
	return s
}

func rendered(t *testing.T, name string) string {
	t.Helper()
	b, err := dist.Files.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Replace(string(b), dist.Executable, exe, 1)
}

// TestInstallTwiceUninstall installs each service twice and removes it,
// checking every file and command on the way.
func TestInstallTwiceUninstall(t *testing.T) {
	tests := []struct {
		name      string
		m         manager
		userspace bool
		uid       int
		dist      string
		path      string
		first     []string
		second    []string
		remove    []string
	}{
		{
			name: "systemd system", m: systemd{}, uid: 0, dist: dist.SystemdSystem, path: "/etc/systemd/system/warren.service",
			first:  []string{"write /etc/systemd/system/warren.service", "systemctl daemon-reload", "systemctl enable --now warren.service"},
			second: []string{"systemctl enable --now warren.service"},
			remove: []string{"systemctl disable --now warren.service", "remove /etc/systemd/system/warren.service", "systemctl daemon-reload"},
		},
		{
			name: "systemd user", m: systemd{}, userspace: true, uid: 1000, dist: dist.SystemdUser, path: "/home/alice/.config/systemd/user/warren.service",
			first:  []string{"write /home/alice/.config/systemd/user/warren.service", "systemctl --user daemon-reload", "systemctl --user enable --now warren.service"},
			second: []string{"systemctl --user enable --now warren.service"},
			remove: []string{"systemctl --user disable --now warren.service", "remove /home/alice/.config/systemd/user/warren.service", "systemctl --user daemon-reload"},
		},
		{
			name: "launchd daemon", m: launchd{}, uid: 0, dist: dist.LaunchdDaemon, path: "/Library/LaunchDaemons/net.warren.daemon.plist",
			first: []string{"write /Library/LaunchDaemons/net.warren.daemon.plist", "launchctl enable system/net.warren.daemon",
				"launchctl bootstrap system /Library/LaunchDaemons/net.warren.daemon.plist"},
			second: []string{"launchctl enable system/net.warren.daemon", "launchctl bootstrap system /Library/LaunchDaemons/net.warren.daemon.plist (may fail)",
				"launchctl kickstart system/net.warren.daemon"},
			remove: []string{"launchctl bootout system/net.warren.daemon (may fail)", "remove /Library/LaunchDaemons/net.warren.daemon.plist"},
		},
		{
			name: "launchd agent", m: launchd{}, userspace: true, uid: 501, dist: dist.LaunchdUserspace, path: "/home/alice/Library/LaunchAgents/net.warren.userspace.plist",
			first: []string{"write /home/alice/Library/LaunchAgents/net.warren.userspace.plist", "launchctl enable gui/501/net.warren.userspace",
				"launchctl bootstrap gui/501 /home/alice/Library/LaunchAgents/net.warren.userspace.plist"},
			second: []string{"launchctl enable gui/501/net.warren.userspace", "launchctl bootstrap gui/501 /home/alice/Library/LaunchAgents/net.warren.userspace.plist (may fail)",
				"launchctl kickstart gui/501/net.warren.userspace"},
			remove: []string{"launchctl bootout gui/501/net.warren.userspace (may fail)", "remove /home/alice/Library/LaunchAgents/net.warren.userspace.plist"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, _ := testHost(t, tt.uid)
			o := Options{Userspace: tt.userspace}
			want := map[string]string{tt.path: rendered(t, tt.dist)}

			r, err := install(context.Background(), tt.m, h, o)
			if err != nil {
				t.Fatal(err)
			}
			if r.Change != Created || r.Path != tt.path {
				t.Errorf("first install: change %v path %s, want %v %s", r.Change, r.Path, Created, tt.path)
			}
			if diff := cmp.Diff(tt.first, steps(r)); diff != "" {
				t.Errorf("first install steps (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(want, testutil.Tree(t, h.Root)); diff != "" {
				t.Errorf("files after the first install (-want +got):\n%s", diff)
			}
			fi1, err := os.Stat(filepath.Join(h.Root, tt.path))
			if err != nil {
				t.Fatal(err)
			}
			if fi1.Mode().Perm() != 0o644 {
				t.Errorf("mode %v, want 0644", fi1.Mode().Perm())
			}

			r, err = install(context.Background(), tt.m, h, o)
			if err != nil {
				t.Fatal(err)
			}
			if r.Change != Unchanged {
				t.Errorf("second install: change %v, want %v", r.Change, Unchanged)
			}
			if diff := cmp.Diff(tt.second, steps(r)); diff != "" {
				t.Errorf("second install steps (-want +got):\n%s", diff)
			}
			fi2, err := os.Stat(filepath.Join(h.Root, tt.path))
			if err != nil {
				t.Fatal(err)
			}
			if !os.SameFile(fi1, fi2) || !fi1.ModTime().Equal(fi2.ModTime()) {
				t.Error("the second install rewrote the file")
			}
			if diff := cmp.Diff(want, testutil.Tree(t, h.Root)); diff != "" {
				t.Errorf("files after the second install (-want +got):\n%s", diff)
			}

			// Someone else's files beside ours stay.
			other := filepath.Join(filepath.Dir(tt.path), "other.service")
			if err := os.WriteFile(filepath.Join(h.Root, other), []byte("theirs\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			r, err = uninstall(context.Background(), tt.m, h, o)
			if err != nil {
				t.Fatal(err)
			}
			if r.Change != Removed {
				t.Errorf("uninstall: change %v, want %v", r.Change, Removed)
			}
			if diff := cmp.Diff(tt.remove, steps(r)); diff != "" {
				t.Errorf("uninstall steps (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(map[string]string{other: "theirs\n"}, testutil.Tree(t, h.Root)); diff != "" {
				t.Errorf("files after uninstall (-want +got):\n%s", diff)
			}

			r, err = uninstall(context.Background(), tt.m, h, o)
			if err != nil || r.Change != Absent || len(r.Steps) != 0 {
				t.Errorf("second uninstall: %v, change %v, steps %v; want nothing to do", err, r.Change, steps(r))
			}
		})
	}
}

// TestInstallReplacesAnOlderOne: a unit of ours naming another binary is
// rewritten and the service restarted on the new one.
func TestInstallReplacesAnOlderOne(t *testing.T) {
	for _, tt := range []struct {
		m    manager
		want []string
	}{
		{systemd{}, []string{"write /etc/systemd/system/warren.service", "systemctl daemon-reload", "systemctl enable warren.service", "systemctl restart warren.service"}},
		{launchd{}, []string{"write /Library/LaunchDaemons/net.warren.daemon.plist", "launchctl bootout system/net.warren.daemon (may fail)",
			"launchctl enable system/net.warren.daemon", "launchctl bootstrap system /Library/LaunchDaemons/net.warren.daemon.plist"}},
	} {
		h, _ := testHost(t, 0)
		old := h
		old.Executable = "/usr/bin/warren"
		if _, err := install(context.Background(), tt.m, old, Options{}); err != nil {
			t.Fatal(err)
		}
		r, err := install(context.Background(), tt.m, h, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if r.Change != Replaced {
			t.Errorf("change %v, want %v", r.Change, Replaced)
		}
		if diff := cmp.Diff(tt.want, steps(r)); diff != "" {
			t.Errorf("steps (-want +got):\n%s", diff)
		}
		b, err := os.ReadFile(filepath.Join(h.Root, r.Path))
		if err != nil || !bytes.Contains(b, []byte(exe)) || bytes.Contains(b, []byte("/usr/bin/warren")) {
			t.Errorf("the file does not name the new binary only (%v):\n%s", err, b)
		}
	}
}

// TestRefusedChangesNothing: every refusal is one line, writes nothing
// and runs nothing.
func TestRefusedChangesNothing(t *testing.T) {
	const theirs = "[Service]\nExecStart=/usr/bin/warren daemon\n"
	tests := []struct {
		name      string
		uninstall bool
		uid       int
		userspace bool
		exe       string
		existing  string // the content of the unit before, "" for none
		link      bool   // the unit is a symbolic link to /dev/null (masked)
		want      string
		is        error
	}{
		{name: "system install by a user", uid: 1000, want: "installing the system service needs root: run it with sudo, or use --userspace for a service of your own without root", is: ErrNeedsRoot},
		{name: "system uninstall by a user", uninstall: true, uid: 1000, existing: "ours", want: "removing the system service needs root: run it with sudo, or use --userspace for a service of your own without root", is: ErrNeedsRoot},
		{name: "userspace by root", uid: 0, userspace: true, want: "--userspace is a service of the user who runs it, and this is root: run it as that user, without sudo"},
		{name: "relative binary", uid: 0, exe: "bin/warren", want: `the warren binary's path "bin/warren" is not absolute and clean`},
		{name: "binary with a space", uid: 0, exe: "/opt/my warren/warren", want: `the warren binary's path "/opt/my warren/warren" has a character a service file would have to quote: install warren at a plain path such as /usr/local/bin/warren`},
		{name: "binary with a percent", uid: 0, exe: "/opt/100%/warren", want: `the warren binary's path "/opt/100%/warren" has a character a service file would have to quote: install warren at a plain path such as /usr/local/bin/warren`},
		{name: "deleted binary", uid: 0, exe: "/usr/local/bin/warren (deleted)", want: `the warren binary's path "/usr/local/bin/warren (deleted)" has a character a service file would have to quote: install warren at a plain path such as /usr/local/bin/warren`},
		{name: "binary in /tmp", uid: 0, exe: "/tmp/go-build1/b001/exe/warren", want: "the warren binary /tmp/go-build1/b001/exe/warren is in /tmp/, which a service does not see (PrivateTmp) and which is emptied: install warren at a lasting path such as /usr/local/bin/warren first"},
		{name: "no binary", uid: 0, exe: "-", want: "cannot tell where the warren binary is"},
		{name: "install over a unit not ours", uid: 0, existing: theirs, want: "/etc/systemd/system/warren.service is not written by warren service install: move it away first", is: ErrNotOurs},
		{name: "uninstall a unit not ours", uninstall: true, uid: 0, existing: theirs, want: "/etc/systemd/system/warren.service is not written by warren service install: move it away first", is: ErrNotOurs},
		{name: "install over a masked unit", uid: 0, link: true, want: "/etc/systemd/system/warren.service is a symbolic link (a masked or linked service?), not written by warren service install: remove it first", is: ErrNotOurs},
		{name: "uninstall a masked unit", uninstall: true, uid: 0, link: true, want: "/etc/systemd/system/warren.service is a symbolic link (a masked or linked service?), not written by warren service install: remove it first", is: ErrNotOurs},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, r := testHost(t, tt.uid)
			switch tt.exe {
			case "":
			case "-":
				h.Executable = ""
			default:
				h.Executable = tt.exe
			}
			unit := filepath.Join(h.Root, "/etc/systemd/system/warren.service")
			if err := os.MkdirAll(filepath.Dir(unit), 0o755); err != nil {
				t.Fatal(err)
			}
			switch {
			case tt.existing == "ours":
				tt.existing = rendered(t, dist.SystemdSystem)
				fallthrough
			case tt.existing != "":
				if err := os.WriteFile(unit, []byte(tt.existing), 0o644); err != nil {
					t.Fatal(err)
				}
			case tt.link:
				if err := os.Symlink("/dev/null", unit); err != nil {
					t.Fatal(err)
				}
			}
			before := testutil.Tree(t, h.Root)
			do := install
			if tt.uninstall {
				do = uninstall
			}
			_, err := do(context.Background(), systemd{}, h, Options{Userspace: tt.userspace})
			if err == nil || err.Error() != tt.want {
				t.Fatalf("error:\n got %v\nwant %s", err, tt.want)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %v is not %v", err, tt.is)
			}
			if len(r.ran) > 0 {
				t.Errorf("ran %q", r.ran)
			}
			if diff := cmp.Diff(before, testutil.Tree(t, h.Root)); diff != "" {
				t.Errorf("files changed (-before +after):\n%s", diff)
			}
			if tt.link {
				if fi, err := os.Lstat(unit); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
					t.Errorf("the link is gone: %v", err)
				}
			}
		})
	}
}

// TestDryRunChangesNothing: a dry run plans what a real one does, for a
// user too, and touches nothing.
func TestDryRunChangesNothing(t *testing.T) {
	h, r := testHost(t, 1000)
	rep, err := install(context.Background(), systemd{}, h, Options{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"write /etc/systemd/system/warren.service", "systemctl daemon-reload", "systemctl enable --now warren.service"}
	if diff := cmp.Diff(want, steps(rep)); diff != "" {
		t.Errorf("steps (-want +got):\n%s", diff)
	}
	if string(rep.Text) != rendered(t, dist.SystemdSystem) {
		t.Error("the report's text is not the rendered unit")
	}
	if got := testutil.Tree(t, h.Root); len(got) > 0 || len(r.ran) > 0 {
		t.Errorf("dry run wrote %v and ran %q", got, r.ran)
	}
}

// TestCommandFailureSaysWhatChanged: a failing systemctl is reported in
// one line with its first line of output and what was done before it; a
// service manager that takes nothing leaves no file behind.
func TestCommandFailureSaysWhatChanged(t *testing.T) {
	h, r := testHost(t, 0)
	r.fail = map[string]string{"systemctl daemon-reload": "\nSystem has not been booted with systemd as init system (PID 1). Can't operate.\nFailed to connect to bus\n"}
	_, err := install(context.Background(), systemd{}, h, Options{})
	want := "systemctl daemon-reload: exit status 1: System has not been booted with systemd as init system (PID 1). Can't operate. (nothing is installed)"
	if err == nil || err.Error() != want {
		t.Errorf("error:\n got %v\nwant %s", err, want)
	}
	if !slices.Equal(r.ran, []string{"systemctl daemon-reload"}) {
		t.Errorf("ran %q, want only the failing command", r.ran)
	}
	if got := testutil.Tree(t, h.Root); len(got) > 0 {
		t.Errorf("an install systemd never took left %v", got)
	}

	// Once systemd has read the unit, a later failure leaves it there
	// for uninstall.
	r.ran, r.fail = nil, map[string]string{"systemctl enable --now warren.service": "Job for warren.service failed because the control process exited with error code."}
	_, err = install(context.Background(), systemd{}, h, Options{})
	want = "systemctl enable --now warren.service: exit status 1: Job for warren.service failed because the control process exited with error code. (/etc/systemd/system/warren.service is written; warren service uninstall removes it)"
	if err == nil || err.Error() != want {
		t.Errorf("error:\n got %v\nwant %s", err, want)
	}
	if diff := cmp.Diff(map[string]string{"/etc/systemd/system/warren.service": rendered(t, dist.SystemdSystem)}, testutil.Tree(t, h.Root)); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}

	// A unit rewritten for a new binary is put back when systemd is
	// not there to take it.
	moved := h
	moved.Executable = "/usr/bin/warren"
	r.fail = map[string]string{"systemctl daemon-reload": "Failed to connect to bus: No such file or directory"}
	_, err = install(context.Background(), systemd{}, moved, Options{})
	want = "systemctl daemon-reload: exit status 1: Failed to connect to bus: No such file or directory (/etc/systemd/system/warren.service is as it was)"
	if err == nil || err.Error() != want {
		t.Errorf("error:\n got %v\nwant %s", err, want)
	}
	if diff := cmp.Diff(map[string]string{"/etc/systemd/system/warren.service": rendered(t, dist.SystemdSystem)}, testutil.Tree(t, h.Root)); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}

	// Uninstall stops before removing anything when disable fails.
	r.fail = map[string]string{"systemctl disable --now warren.service": "Failed to disable unit"}
	before := testutil.Tree(t, h.Root)
	_, err = uninstall(context.Background(), systemd{}, h, Options{})
	if want := "systemctl disable --now warren.service: exit status 1: Failed to disable unit"; err == nil || err.Error() != want {
		t.Errorf("error:\n got %v\nwant %s", err, want)
	}
	if diff := cmp.Diff(before, testutil.Tree(t, h.Root)); diff != "" {
		t.Errorf("a failed uninstall changed files (-before +after):\n%s", diff)
	}
}

// TestUserUnitFollowsXDGConfigHome: the user manager reads
// $XDG_CONFIG_HOME/systemd/user when it is set.
func TestUserUnitFollowsXDGConfigHome(t *testing.T) {
	for _, tt := range []struct{ home, config, want string }{
		{"/home/alice", "", "/home/alice/.config/systemd/user/warren.service"},
		{"/home/alice", "/srv/alice/config", "/srv/alice/config/systemd/user/warren.service"},
		{"/home/alice", "relative", "/home/alice/.config/systemd/user/warren.service"},
		{"", "", ""},
	} {
		got, err := systemd{}.path(Host{Home: tt.home, ConfigHome: tt.config}, Options{Userspace: true})
		if got != tt.want || (err != nil) != (tt.want == "") {
			t.Errorf("HOME=%q XDG_CONFIG_HOME=%q: %q, %v; want %q", tt.home, tt.config, got, err, tt.want)
		}
	}
}
