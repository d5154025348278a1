package ctl

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/warrennet/warren/internal/testutil"
)

// Uids the authorization test runs callers as.
const (
	operatorUID = 65534 // nobody, made the operator
	strangerUID = 65533 // nobody in particular
)

// Environment of the helper process (TestCallerHelper).
const (
	envHelperSocket = "WARREN_CTL_TEST_SOCKET"
	resultPrefix    = "CALLS "
)

// everyCall makes each control call once and says how it went: "ok", or
// the error the client returned.
func everyCall(ctx context.Context, c *Client) map[string]string {
	yes := true
	calls := []struct {
		name string
		do   func() error
	}{
		{"status", func() error { _, err := c.Status(ctx); return err }},
		{"why", func() error { _, err := c.Why(ctx, WhyQuery{IP: netip.MustParseAddr("192.0.2.1")}); return err }},
		{"prefs", func() error { _, err := c.Prefs(ctx); return err }},
		{"ssh-cert", func() error {
			res, err := c.SSHCert(ctx, SSHCertRequest{KeyPath: "/k.pub"})
			if err == nil && res.Path != fmt.Sprintf("/k.pub as uid %d", os.Geteuid()) {
				return fmt.Errorf("the daemon saw the caller as %q", res.Path)
			}
			return err
		}},
		{"dial", func() error {
			conn, err := c.Dial(ctx, "echo", 7)
			if err != nil {
				return err
			}
			defer conn.Close()
			if got, err := echoThrough(conn, []byte("hello")); err != nil || string(got) != "hello" {
				return fmt.Errorf("echo through the daemon: %q, %v", got, err)
			}
			return nil
		}},
		{"up", func() error { return c.Up(ctx, UpRequest{}, nil) }},
		{"login", func() error { return c.Login(ctx, UpRequest{}, nil) }},
		{"logout", func() error { _, err := c.Logout(ctx); return err }},
		{"down", func() error { return c.Down(ctx) }},
		{"set", func() error { _, err := c.EditPrefs(ctx, PrefsEdit{LANWins: &yes}); return err }},
	}
	out := map[string]string{}
	for _, call := range calls {
		out[call.name] = "ok"
		if err := call.do(); err != nil {
			out[call.name] = err.Error()
		}
	}
	return out
}

// TestCallerHelper is not a test: TestAuthorization runs the test binary
// again as another user, with this test selected, to make every call from
// a process of that uid. It prints what it got on one line.
func TestCallerHelper(t *testing.T) {
	sock := os.Getenv(envHelperSocket)
	if sock == "" {
		t.Skip("helper of TestAuthorization: runs only in a process it starts")
	}
	c := NewClient(sock)
	defer c.Close()
	b, err := json.Marshal(everyCall(context.Background(), c))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("%s%s\n", resultPrefix, b)
}

// callAs runs TestCallerHelper in a copy of the test binary as uid (and a
// gid of the same number), against the socket in dir.
func callAs(t *testing.T, dir string, uid uint32) map[string]string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// The go tool's build directory is private to root: the other user
	// runs a copy from dir.
	bin := filepath.Join(dir, "ctl.test")
	if _, err := os.Stat(bin); err != nil {
		src, err := os.ReadFile(self)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(bin, src, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(bin, "-test.run=^TestCallerHelper$", "-test.count=1")
	cmd.Dir = dir
	cmd.Env = []string{envHelperSocket + "=" + filepath.Join(dir, "warren.sock"), "PATH=/usr/bin:/bin"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("helper as uid %d: %v\n%s%s", uid, err, stdout.String(), stderr.String())
	}
	sc := bufio.NewScanner(io.MultiReader(&stdout))
	for sc.Scan() {
		if line, ok := strings.CutPrefix(sc.Text(), resultPrefix); ok {
			var got map[string]string
			if err := json.Unmarshal([]byte(line), &got); err != nil {
				t.Fatal(err)
			}
			return got
		}
	}
	t.Fatalf("helper as uid %d printed no result:\n%s", uid, stdout.String())
	return nil
}

// TestAuthorization makes every call as root, as the operator and as
// another user, each from a process of that uid: the kernel's word on the
// caller is what the daemon decides by.
func TestAuthorization(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: runs callers as other uids (sudo go test -run TestAuthorization ./overlay/ctl)")
	}
	// A directory other users can enter, for the socket and the binary.
	dir := t.TempDir()
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	b := &fakeBackend{operator: &Operator{Name: "nobody", UID: operatorUID}, echo: testutil.EchoTCP(t)}
	root := serveIn(t, dir, b)

	ok := func(names ...string) map[string]string {
		m := map[string]string{}
		for _, n := range names {
			m[n] = "ok"
		}
		return m
	}
	rootOnly := map[string]string{
		"up":     "only root may bring the tunnel up (the operator may read the status and get ssh certificates)",
		"login":  "only root may log this machine in (the operator may read the status and get ssh certificates)",
		"logout": "only root may log this machine out (the operator may read the status and get ssh certificates)",
		"down":   "only root may take the tunnel down (the operator may read the status and get ssh certificates)",
		"set":    "only root may change the settings (the operator may read the status and get ssh certificates)",
	}
	operator := ok("status", "why", "prefs", "ssh-cert", "dial")
	for k, v := range rootOnly {
		operator[k] = v
	}
	stranger := map[string]string{
		"status":   "only root or this machine's operator (warren set --operator USER) may read the status",
		"why":      "only root or this machine's operator (warren set --operator USER) may ask why",
		"prefs":    "only root or this machine's operator (warren set --operator USER) may read the settings",
		"ssh-cert": "only root or this machine's operator (warren set --operator USER) may get ssh certificates",
		"dial":     "only root or this machine's operator (warren set --operator USER) may open connections through the daemon",
	}
	for k, v := range rootOnly {
		stranger[k] = v
	}

	if diff := cmp.Diff(operator, callAs(t, dir, operatorUID)); diff != "" {
		t.Errorf("the operator (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(stranger, callAs(t, dir, strangerUID)); diff != "" {
		t.Errorf("another user (-want +got):\n%s", diff)
	}
	// Without an operator, the operator is a stranger like any other.
	b.mu.Lock()
	b.operator = nil
	b.mu.Unlock()
	if diff := cmp.Diff(stranger, callAs(t, dir, operatorUID)); diff != "" {
		t.Errorf("the former operator (-want +got):\n%s", diff)
	}
	// Root last: it takes the tunnel down and changes settings.
	want := ok("status", "why", "prefs", "ssh-cert", "dial", "up", "login", "logout", "down", "set")
	if diff := cmp.Diff(want, everyCall(context.Background(), root)); diff != "" {
		t.Errorf("root (-want +got):\n%s", diff)
	}
}
