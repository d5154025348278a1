package cli

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/warrennet/warren/overlay/ctl"
)

// upBackend is a daemon that records the token `warren up` sent it.
type upBackend struct{ token chan string }

func (b *upBackend) Status(context.Context) ctl.Status { return ctl.Status{} }
func (b *upBackend) Up(_ context.Context, req ctl.UpRequest, _ func(ctl.Progress)) error {
	b.token <- req.Token
	return nil
}
func (b *upBackend) Login(context.Context, ctl.UpRequest, func(ctl.Progress)) error {
	return errors.New("not here")
}
func (b *upBackend) Logout(context.Context) (ctl.LogoutResult, error) {
	return ctl.LogoutResult{}, errors.New("not here")
}
func (b *upBackend) Prefs(context.Context) ctl.Prefs { return ctl.Prefs{} }
func (b *upBackend) SSHCert(context.Context, ctl.Caller, ctl.SSHCertRequest) (ctl.SSHCertResult, error) {
	return ctl.SSHCertResult{}, errors.New("not here")
}
func (b *upBackend) Down(context.Context) error { return nil }
func (b *upBackend) Why(context.Context, ctl.WhyQuery) (ctl.Why, error) {
	return ctl.Why{}, errors.New("not here")
}
func (b *upBackend) EditPrefs(context.Context, ctl.PrefsEdit) (ctl.Prefs, error) {
	return ctl.Prefs{}, nil
}
func (b *upBackend) DialContext(context.Context, string, string) (net.Conn, error) {
	return nil, errors.New("not here")
}

// TestNodeToken: `warren up` and `warren connector` take the token from
// exactly one of --token-file, WARREN_TOKEN and --token; the file's
// newline is dropped; two at once is a one-line error.
func TestNodeToken(t *testing.T) {
	dir := t.TempDir()
	file := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	private := file("private", "wrn1_fromfile\n", 0o600)
	crlf := file("crlf", "wrn1_crlf\r\n", 0o600)
	open := file("open", "wrn1_open\n", 0o644)
	empty := file("empty", "\n", 0o600)
	missing := filepath.Join(dir, "missing")

	tests := []struct {
		name     string
		args     string // after the command
		env      string // WARREN_TOKEN
		want     string // the token the role gets
		wantErr  string
		wantWarn string
	}{
		{name: "file", args: "--token-file " + private, want: "wrn1_fromfile"},
		{name: "file with CRLF", args: "--token-file " + crlf, want: "wrn1_crlf"},
		{name: "env", env: "wrn1_fromenv\n", want: "wrn1_fromenv"},
		{name: "argv still works", args: "--token wrn1_argv", want: "wrn1_argv"},
		{name: "none: already enrolled", want: ""},
		{name: "file readable by others warns", args: "--token-file " + open, want: "wrn1_open",
			wantWarn: "warning: token file " + open + " is readable by other users (chmod 600 " + open + ")\n"},
		{name: "file and env", args: "--token-file " + private, env: "wrn1_fromenv", wantErr: "the token is given twice (--token-file and WARREN_TOKEN): give it one way"},
		{name: "argv and env", args: "--token wrn1_argv", env: "wrn1_fromenv", wantErr: "the token is given twice (WARREN_TOKEN and --token): give it one way"},
		{name: "file and argv", args: "--token-file " + private + " --token wrn1_argv", wantErr: "the token is given twice (--token-file and --token): give it one way"},
		{name: "empty file", args: "--token-file " + empty, wantErr: "token file " + empty + " is empty"},
		{name: "missing file", args: "--token-file " + missing, wantErr: "reading token: open " + missing + ": no such file or directory"},
	}
	for _, cmd := range []string{"connector", "up"} {
		for _, tt := range tests {
			t.Run(cmd+"/"+tt.name, func(t *testing.T) {
				got, stderr, err := runNodeCommand(t, cmd, tt.args, tt.env)
				if tt.wantErr != "" {
					if err == nil || err.Error() != tt.wantErr {
						t.Fatalf("err = %v, want %q", err, tt.wantErr)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if got != tt.want {
					t.Errorf("token = %q, want %q", got, tt.want)
				}
				if stderr != tt.wantWarn {
					t.Errorf("stderr = %q, want %q", stderr, tt.wantWarn)
				}
			})
		}
	}
}

// runNodeCommand runs `warren CMD ARGS` with WARREN_TOKEN set to env and
// returns the token the connector role or the daemon received.
func runNodeCommand(t *testing.T, cmd, args, env string) (token, stderr string, err error) {
	t.Helper()
	var out, errb bytes.Buffer
	got := make(chan string, 1)
	roles := Roles{Connector: func(_ context.Context, o ConnectorOptions) error {
		got <- o.Token
		return nil
	}}
	argv := []string{"warren", cmd}
	if cmd == "up" {
		sock := filepath.Join(t.TempDir(), "ctl.sock")
		ln, lerr := ctl.Listen(sock)
		if lerr != nil {
			t.Fatal(lerr)
		}
		ctx, cancel := context.WithCancel(context.Background())
		served := make(chan struct{})
		go func() {
			defer close(served)
			ctl.NewServer(&upBackend{token: got}, nil).Serve(ctx, ln)
		}()
		t.Cleanup(func() {
			cancel()
			<-served
		})
		argv = append(argv, "--socket", sock)
	}
	argv = append(argv, strings.Fields(args)...)
	app := New(Env{Stdout: &out, Stderr: &errb, Getenv: func(k string) string {
		if k == EnvToken {
			return env
		}
		return ""
	}}, roles)
	err = app.RunContext(context.Background(), Permute(app, argv))
	select {
	case token = <-got:
	default:
		if err == nil {
			t.Fatal("the command succeeded without handing on a token")
		}
	}
	return token, errb.String(), err
}
