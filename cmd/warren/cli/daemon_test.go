package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// runDaemon runs `warren ARGS` with env and returns what the daemon role
// was started with.
func runDaemon(t *testing.T, env map[string]string, args ...string) (DaemonOptions, error) {
	t.Helper()
	var got DaemonOptions
	var out bytes.Buffer
	app := New(Env{Stdout: &out, Stderr: &out, Getenv: func(k string) string { return env[k] }, Getuid: func() int { return 1000 }},
		Roles{Daemon: func(_ context.Context, o DaemonOptions) error { got = o; return nil }})
	err := app.RunContext(context.Background(), Permute(app, append([]string{"warren"}, args...)))
	return got, err
}

func TestDaemonOptions(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	xdg := map[string]string{"HOME": "/home/alice", "XDG_RUNTIME_DIR": "/run/user/1000", "XDG_STATE_HOME": "/home/alice/.state"}
	home := map[string]string{"HOME": "/home/alice"}
	for _, tt := range []struct {
		name string
		env  map[string]string
		args string
		want DaemonOptions
		err  string
	}{
		{name: "tun mode defaults", args: "daemon",
			want: DaemonOptions{State: DefaultDaemonState, Socket: "/run/warren/warren.sock", Interface: "warren0"}},
		{name: "userspace, xdg", env: xdg, args: "daemon --userspace --socks5 127.0.0.1:1080 --http-proxy 127.0.0.1:1081",
			want: DaemonOptions{State: "/home/alice/.state/warren", Socket: "/run/user/1000/warren/warren.sock", Interface: "warren0", Userspace: true, SOCKS5: "127.0.0.1:1080", HTTPProxy: "127.0.0.1:1081"}},
		{name: "userspace, no xdg", env: home, args: "daemon --userspace",
			want: DaemonOptions{State: "/home/alice/.local/state/warren", Socket: "/tmp/warren-1000/warren.sock", Interface: "warren0", Userspace: true}},
		{name: "userspace, windows", env: map[string]string{"LOCALAPPDATA": "/appdata/alice"}, args: "daemon --userspace",
			want: DaemonOptions{State: "/appdata/alice/warren/state", Socket: "/appdata/alice/warren/warren.sock", Interface: "warren0", Userspace: true}},
		{name: "userspace, given paths", args: "--socket /s/w.sock daemon --userspace --state /st",
			want: DaemonOptions{State: "/st", Socket: "/s/w.sock", Interface: "warren0", Userspace: true}},
		{name: "proxy credentials", env: xdg, args: "daemon --userspace --socks5 127.0.0.1:0 --proxy-user bob --proxy-password-file " + pw,
			want: DaemonOptions{State: "/home/alice/.state/warren", Socket: "/run/user/1000/warren/warren.sock", Interface: "warren0", Userspace: true, SOCKS5: "127.0.0.1:0", ProxyUser: "bob", ProxyPassword: "s3cret"}},

		{name: "proxy without userspace", args: "daemon --socks5 127.0.0.1:1080", err: "--socks5 needs --userspace (the TUN daemon serves no proxies)"},
		{name: "interface with userspace", env: xdg, args: "daemon --userspace --interface wg9", err: "--interface has no meaning with --userspace: there is no TUN device"},
		{name: "no port", env: xdg, args: "daemon --userspace --socks5 127.0.0.1", err: `--socks5 "127.0.0.1" is not HOST:PORT (for example 127.0.0.1:1080)`},
		{name: "bad port", env: xdg, args: "daemon --userspace --http-proxy 127.0.0.1:http", err: `--http-proxy "127.0.0.1:http": "http" is not a port number (0 picks one)`},
		{name: "same address", env: xdg, args: "daemon --userspace --socks5 127.0.0.1:1080 --http-proxy 127.0.0.1:1080", err: "--socks5 and --http-proxy both listen on 127.0.0.1:1080"},
		{name: "user alone", env: xdg, args: "daemon --userspace --socks5 127.0.0.1:1080 --proxy-user bob", err: "give --proxy-user and --proxy-password-file together"},
		{name: "credentials, no proxy", env: xdg, args: "daemon --userspace --proxy-user bob --proxy-password-file " + pw, err: "--proxy-user needs a proxy: --socks5 ADDR or --http-proxy ADDR"},
		{name: "empty password", env: xdg, args: "daemon --userspace --socks5 127.0.0.1:1080 --proxy-user bob --proxy-password-file " + empty, err: "proxy password file " + empty + " is empty"},
		{name: "no home", args: "daemon --userspace", err: "no home directory ($HOME) for the state: give --state DIR"},
		{name: "an argument", args: "daemon now", err: "usage: warren daemon [--userspace [--socks5 ADDR] [--http-proxy ADDR]] [--state DIR] [--socket PATH]"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := runDaemon(t, tt.env, strings.Fields(tt.args)...)
			if tt.err != "" {
				if err == nil || err.Error() != tt.err {
					t.Fatalf("error = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got, cmpopts.IgnoreFields(DaemonOptions{}, "Logger")); diff != "" {
				t.Errorf("options (-want +got):\n%s", diff)
			}
		})
	}
}

// TestClientSocket: user commands use the system daemon's socket when it
// exists, else the user's userspace daemon's.
func TestClientSocket(t *testing.T) {
	for _, tt := range []struct {
		system bool
		env    map[string]string
		want   string
	}{
		{true, map[string]string{"XDG_RUNTIME_DIR": "/run/user/1000"}, "/run/warren/warren.sock"},
		{false, map[string]string{"XDG_RUNTIME_DIR": "/run/user/1000"}, "/run/user/1000/warren/warren.sock"},
		{false, map[string]string{"XDG_RUNTIME_DIR": "relative"}, "/tmp/warren-1000/warren.sock"},
		{false, nil, "/tmp/warren-1000/warren.sock"},
	} {
		var errb bytes.Buffer
		app := New(Env{Stdout: &errb, Stderr: &errb, Getenv: func(k string) string { return tt.env[k] }, Getuid: func() int { return 1000 },
			Exists: func(p string) bool { return tt.system && p == "/run/warren/warren.sock" }}, Roles{})
		err := app.RunContext(context.Background(), []string{"warren", "status"})
		if err == nil || !strings.Contains(err.Error(), "no daemon on "+tt.want+";") {
			t.Errorf("system socket %v, env %v: status = %v, want it to try %s", tt.system, tt.env, err, tt.want)
		}
	}
}
