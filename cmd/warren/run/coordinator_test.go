package run

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/warrennet/warren/cmd/warren/cli"
	"github.com/warrennet/warren/overlay/atomicfile"
	"github.com/warrennet/warren/overlay/coordclient"
	"github.com/warrennet/warren/overlay/wire"
)

// childDataEnv makes the test binary run a coordinator instead of tests,
// so a test can kill -9 a real coordinator process.
const childDataEnv = "WARREN_TEST_COORDINATOR_DATA"

func TestMain(m *testing.M) {
	if dir := os.Getenv(childDataEnv); dir != "" {
		os.Exit(childCoordinator(dir))
	}
	os.Exit(m.Run())
}

func childCoordinator(dir string) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	err := Coordinator(ctx, cli.CoordinatorOptions{
		Listen: "127.0.0.1:0",
		Data:   dir,
		Ready: func(url string) {
			if err := atomicfile.WriteFile(filepath.Join(dir, "url"), []byte(url), 0o600); err != nil {
				fmt.Fprintln(os.Stderr, err)
			}
		},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// startChild starts a coordinator process on dir and returns it with an
// admin client, once it serves.
func startChild(t *testing.T, dir string) (*exec.Cmd, *coordclient.Admin) {
	t.Helper()
	os.Remove(filepath.Join(dir, "url"))
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childDataEnv+"="+dir)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(dir, "url")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("coordinator did not start within 20s: %s", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	b, err := os.ReadFile(filepath.Join(dir, cli.AdminTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := wire.ParseToken(string(b))
	if err != nil {
		t.Fatal(err)
	}
	admin, err := coordclient.NewAdmin(tok, coordclient.WithTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	return cmd, admin
}

func kill9(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
}

var netipEqual = cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{})

// TestKill9LosesNothingAcknowledged kills the coordinator process with
// SIGKILL in the middle of concurrent writes, restarts it on the same data
// directory, and checks that every write it acknowledged is there. Then it
// kills an idle coordinator and compares full exports across the restart.
func TestKill9LosesNothingAcknowledged(t *testing.T) {
	if testing.Short() {
		t.Skip("starts coordinator processes: skipped in -short mode")
	}
	dir := t.TempDir()
	cmd, admin := startChild(t, dir)
	ctx := context.Background()

	tok, err := admin.CreateToken(ctx, wire.CreateTokenRequest{Role: wire.RoleConnector, Name: "office"})
	if err != nil {
		t.Fatal(err)
	}
	ct, _ := wire.ParseToken(tok.Token)
	if _, err := coordclient.Enroll(ctx, ct, wire.EnrollRequest{PublicKey: wire.Key{1, 31: 0x42}}); err != nil {
		t.Fatal(err)
	}

	// Writers add routes and tokens until the coordinator dies.
	var (
		mu           sync.Mutex
		ackedRoutes  []netip.Prefix
		ackedTokens  []string
		wg           sync.WaitGroup
		stop         = make(chan struct{})
		firstWriteOK = make(chan struct{}, 1)
	)
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(w), byte(i), 0}), 24)
				if _, err := admin.AddRoute(ctx, wire.AddRouteRequest{Prefix: p.String(), Connector: "office"}); err != nil {
					return
				}
				mu.Lock()
				ackedRoutes = append(ackedRoutes, p)
				mu.Unlock()
				select {
				case firstWriteOK <- struct{}{}:
				default:
				}
				resp, err := admin.CreateToken(ctx, wire.CreateTokenRequest{Role: wire.RoleClient, Name: fmt.Sprintf("w%d-%d", w, i)})
				if err != nil {
					return
				}
				mu.Lock()
				ackedTokens = append(ackedTokens, resp.Info.ID)
				mu.Unlock()
			}
		})
	}
	<-firstWriteOK
	// Let writes pile up, then kill mid-stream.
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		n := len(ackedRoutes)
		mu.Unlock()
		if n >= 100 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	kill9(t, cmd)
	close(stop)
	wg.Wait()
	if len(ackedRoutes) == 0 {
		t.Fatal("no write was acknowledged before the kill")
	}

	cmd, admin = startChild(t, dir)
	exp, err := admin.Export(ctx)
	if err != nil {
		t.Fatal(err)
	}
	routes := map[netip.Prefix]bool{}
	for _, r := range exp.Routes {
		routes[r.Prefix] = true
	}
	tokens := map[string]bool{}
	for _, tk := range exp.Tokens {
		tokens[tk.ID] = true
	}
	for _, p := range ackedRoutes {
		if !routes[p] {
			t.Errorf("acknowledged route %s lost in the crash", p)
		}
	}
	for _, id := range ackedTokens {
		if !tokens[id] {
			t.Errorf("acknowledged token %s lost in the crash", id)
		}
	}
	t.Logf("%d routes and %d tokens acknowledged before SIGKILL; all present after restart", len(ackedRoutes), len(ackedTokens))

	// An idle kill -9 and restart serve exactly the same state.
	before, err := admin.Export(ctx)
	if err != nil {
		t.Fatal(err)
	}
	kill9(t, cmd)
	_, admin = startChild(t, dir)
	after, err := admin.Export(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(before, after, netipEqual); diff != "" {
		t.Errorf("export changed across kill -9 and restart (-before +after):\n%s", diff)
	}
}

func TestCoordinatorFirstStart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	cmd, admin := startChild(t, dir)
	for _, f := range []struct {
		name string
		mode fs.FileMode
	}{{cli.AdminTokenFile, 0o600}, {"tls.key", 0o600}, {DBFile, 0o600}, {"ssh-ca", fs.ModeDir | 0o700}, {"ssh-ca/keys.json", 0o600}} {
		fi, err := os.Stat(filepath.Join(dir, f.name))
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode() & (fs.ModePerm | fs.ModeDir); got != f.mode {
			t.Errorf("%s mode = %v, want %v", f.name, got, f.mode)
		}
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o700 {
		t.Errorf("data dir mode = %v, want 0700", got)
	}
	// The SSH CA answers, with its first key.
	ca, err := admin.SSHCA(context.Background())
	if err != nil || len(ca.Keys) != 1 || ca.Keys[0].State != wire.SSHCASigning {
		t.Errorf("SSHCA on first start = %+v, %v; want one signing key", ca, err)
	}
	first, err := admin.Tokens(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// A clean stop and restart keeps the admin credential and certificate
	// (the pin inside admin.token still matches).
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatal(err)
		}
		t.Errorf("coordinator exited with %v on SIGTERM, want 0", err)
	}
	_, admin = startChild(t, dir)
	again, err := admin.Tokens(context.Background())
	if err != nil {
		t.Fatalf("admin token from the first start refused after restart: %v", err)
	}
	if len(again) != len(first) || len(first) != 1 || first[0].Role != wire.RoleAdmin {
		t.Errorf("tokens after restart = %v, want the one admin token %v", again, first)
	}
}

// TestCoordinatorDataDir: an existing data directory anyone may write is
// tightened to 0700 before any secret goes in; one owned by another user
// is refused with one line, before anything is written there.
func TestCoordinatorDataDir(t *testing.T) {
	tests := []struct {
		name    string
		mode    fs.FileMode
		owner   int // -1: this user
		wantErr string
	}{
		{name: "mkdir -m 777 tightened", mode: 0o777, owner: -1},
		{name: "0755 tightened", mode: 0o755, owner: -1},
		{name: "another user's refused", mode: 0o777, owner: 65534, wantErr: "data directory: DIR is owned by another user (uid 65534, this process runs as uid 0): chown it to this user or pick another directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.owner >= 0 && os.Geteuid() != 0 {
				t.Skip("skipping: giving a directory to another user needs root (chown)")
			}
			dir := filepath.Join(t.TempDir(), "data")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(dir, tt.mode); err != nil {
				t.Fatal(err)
			}
			if tt.owner >= 0 {
				if err := os.Chown(dir, tt.owner, tt.owner); err != nil {
					t.Fatal(err)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			err := Coordinator(ctx, cli.CoordinatorOptions{Listen: "127.0.0.1:0", Data: dir, Ready: func(string) { cancel() }})
			if tt.wantErr != "" {
				want := strings.ReplaceAll(tt.wantErr, "DIR", dir)
				if err == nil || err.Error() != want {
					t.Fatalf("Coordinator = %v, want %q", err, want)
				}
				if entries, _ := os.ReadDir(dir); len(entries) != 0 {
					t.Errorf("refused data directory has %d entries, want none", len(entries))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(dir)
			if err != nil {
				t.Fatal(err)
			}
			if got := fi.Mode().Perm(); got != 0o700 {
				t.Errorf("data dir mode = %v, want 0700", got)
			}
			if _, err := os.Stat(filepath.Join(dir, RelayKeyFile)); err != nil {
				t.Errorf("relay key not written: %v", err)
			}
		})
	}
}
