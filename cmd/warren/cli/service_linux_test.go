package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/warrennet/warren/dist"
	"github.com/warrennet/warren/internal/testutil"
	"github.com/warrennet/warren/overlay/ctl"
	"github.com/warrennet/warren/service"
)

// recorder is the service manager's programs for the CLI's tests: it
// records every command and runs none.
type recorder struct{ ran []string }

func (r *recorder) Run(_ context.Context, name string, args ...string) ([]byte, error) {
	r.ran = append(r.ran, strings.Join(append([]string{name}, args...), " "))
	return nil, nil
}

// runService runs the CLI against h (systemd, the manager of Linux).
func runService(t *testing.T, h service.Host, args ...string) (stdout string, err error) {
	t.Helper()
	var out, errb bytes.Buffer
	app := New(Env{Stdout: &out, Stderr: &errb, Service: &h}, Roles{})
	err = app.RunContext(context.Background(), Permute(app, append([]string{"warren"}, args...)))
	if errb.Len() > 0 {
		t.Errorf("stderr: %q", errb.String())
	}
	return out.String(), err
}

const testBinary = "/opt/warren/bin/warren"

func serviceHost(t *testing.T, uid int) (service.Host, *recorder) {
	r := &recorder{}
	return service.Host{Root: t.TempDir(), UID: uid, Home: "/home/alice", Executable: testBinary, Run: r}, r
}

// TestServiceInstallUninstall: the system service installed, installed
// again, removed and removed again, as the person sees it.
func TestServiceInstallUninstall(t *testing.T) {
	h, r := serviceHost(t, 0)
	const unit = "/etc/systemd/system/warren.service"
	want, err := service.Render(dist.SystemdSystem, testBinary)
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct {
		args, golden string
		files        map[string]string
		ran          []string
	}{
		{"service install", "service-install.txt", map[string]string{unit: string(want)},
			[]string{"systemctl daemon-reload", "systemctl enable --now warren.service"}},
		{"service install", "service-install-again.txt", map[string]string{unit: string(want)},
			[]string{"systemctl enable --now warren.service"}},
		{"service uninstall", "service-uninstall.txt", map[string]string{},
			[]string{"systemctl disable --now warren.service", "systemctl daemon-reload"}},
		{"service uninstall", "service-uninstall-absent.txt", map[string]string{}, nil},
	} {
		r.ran = nil
		out, err := runService(t, h, strings.Fields(step.args)...)
		if err != nil {
			t.Fatalf("%s: %v", step.args, err)
		}
		golden(t, step.golden, out)
		if diff := cmp.Diff(step.files, testutil.Tree(t, h.Root)); diff != "" {
			t.Errorf("%s: files (-want +got):\n%s", step.args, diff)
		}
		if diff := cmp.Diff(step.ran, r.ran); diff != "" {
			t.Errorf("%s: commands (-want +got):\n%s", step.args, diff)
		}
	}
}

func TestServiceUserspace(t *testing.T) {
	h, r := serviceHost(t, 1000)
	out, err := runService(t, h, "service", "install", "--userspace")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "service-install-userspace.txt", out)
	want, err := service.Render(dist.SystemdUser, testBinary)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]string{"/home/alice/.config/systemd/user/warren.service": string(want)}, testutil.Tree(t, h.Root)); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"systemctl --user daemon-reload", "systemctl --user enable --now warren.service"}, r.ran); diff != "" {
		t.Errorf("commands (-want +got):\n%s", diff)
	}
	if _, err := runService(t, h, "service", "uninstall", "--userspace"); err != nil {
		t.Fatal(err)
	}
	if got := testutil.Tree(t, h.Root); len(got) > 0 {
		t.Errorf("uninstall left %v", got)
	}
}

// A dry run, as a user who could not install, shows the unit and the
// commands and changes nothing.
func TestServiceDryRun(t *testing.T) {
	h, r := serviceHost(t, 1000)
	out, err := runService(t, h, "service", "install", "--dry-run")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "service-install-dry-run.txt", out)
	if got := testutil.Tree(t, h.Root); len(got) > 0 || len(r.ran) > 0 {
		t.Errorf("dry run wrote %v and ran %q", got, r.ran)
	}
}

func TestServiceRefused(t *testing.T) {
	theirs := map[string]string{"/etc/systemd/system/warren.service": "[Service]\nExecStart=/usr/bin/warren daemon\n"}
	for _, tt := range []struct {
		args  string
		uid   int
		files map[string]string
		want  string
	}{
		{"service install", 1000, nil, "installing the system service needs root: run it with sudo, or use --userspace for a service of your own without root"},
		{"service uninstall", 1000, nil, "removing the system service needs root: run it with sudo, or use --userspace for a service of your own without root"},
		{"service install --userspace", 0, nil, "--userspace is a service of the user who runs it, and this is root: run it as that user, without sudo"},
		{"service install", 0, theirs, "/etc/systemd/system/warren.service is not written by warren service install: move it away first"},
		{"service uninstall", 0, theirs, "/etc/systemd/system/warren.service is not written by warren service install: move it away first"},
		{"service install extra", 0, nil, "usage: warren service install [--userspace] [--dry-run]"},
	} {
		t.Run(tt.args, func(t *testing.T) {
			h, r := serviceHost(t, tt.uid)
			for p, text := range tt.files {
				if err := os.MkdirAll(filepath.Dir(filepath.Join(h.Root, p)), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(h.Root, p), []byte(text), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			out, err := runService(t, h, strings.Fields(tt.args)...)
			if err == nil || err.Error() != tt.want {
				t.Errorf("error:\n got %v\nwant %s", err, tt.want)
			}
			if out != "" {
				t.Errorf("printed %q", out)
			}
			files := tt.files
			if files == nil {
				files = map[string]string{}
			}
			if diff := cmp.Diff(files, testutil.Tree(t, h.Root)); diff != "" {
				t.Errorf("files changed (-want +got):\n%s", diff)
			}
			if len(r.ran) > 0 {
				t.Errorf("ran %q", r.ran)
			}
		})
	}
}

// The system unit makes the directories the daemon's defaults live in:
// the state directory under StateDirectory=, the socket's directory as
// RuntimeDirectory= (which goes when the service stops, so clients see
// no system socket then).
func TestServiceUnitMatchesDaemonDefaults(t *testing.T) {
	b, err := service.Render(dist.SystemdSystem, testBinary)
	if err != nil {
		t.Fatal(err)
	}
	setting := func(key string) string {
		for l := range strings.Lines(string(b)) {
			if v, ok := strings.CutPrefix(strings.TrimSpace(l), key+"="); ok {
				return v
			}
		}
		return ""
	}
	if state := "/var/lib/" + setting("StateDirectory"); !strings.HasPrefix(DefaultDaemonState, state+"/") {
		t.Errorf("StateDirectory= is %s, not a parent of the daemon's default state %s", state, DefaultDaemonState)
	}
	if run := "/run/" + setting("RuntimeDirectory"); filepath.Dir(ctl.DefaultSocket) != run {
		t.Errorf("RuntimeDirectory= is %s, not the directory of the default socket %s", run, ctl.DefaultSocket)
	}
	if !strings.Contains(setting("ExecStart"), " daemon") {
		t.Errorf("ExecStart=%s does not run the daemon", setting("ExecStart"))
	}
}
