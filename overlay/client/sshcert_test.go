package client_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warrennet/warren/internal/testutil"
	"github.com/warrennet/warren/overlay/agent"
	"github.com/warrennet/warren/overlay/client"
	"github.com/warrennet/warren/overlay/ctl"
	"github.com/warrennet/warren/overlay/nodestate"
	"github.com/warrennet/warren/overlay/wire"
	"github.com/warrennet/warren/test/coordtest"
)

// fakeCA stands in for the coordinator's SSH CA (whose own tests are
// h-sshca's): it signs nothing, but records each request and answers with
// the validity asked for, or the error it is set to return.
type fakeCA struct {
	mu      sync.Mutex // guards the fields below
	calls   int
	fail    error
	closed  bool // the engine is down: no call may come
	lateErr string
}

func (f *fakeCA) SSHCert(_ context.Context, pub string, validity time.Duration) (*wire.SSHCertResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		f.lateErr = "a renewal ran while the tunnel was down"
	}
	f.calls++
	if f.fail != nil {
		return nil, f.fail
	}
	now := time.Now()
	return &wire.SSHCertResponse{
		Certificate: "ssh-ed25519-cert-v01@openssh.com AAAAfake" + strings.Repeat("A", f.calls) + " alice@example.com",
		Serial:      uint64(f.calls), KeyID: "alice@example.com", Principals: []string{"alice"},
		ValidAfter: now.Add(-5 * time.Minute), ValidBefore: now.Add(validity),
	}, nil
}

func (f *fakeCA) Logout(context.Context) error { return nil }
func (f *fakeCA) Close() error                 { return nil }

func (f *fakeCA) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// upWithCA enrolls a laptop at a real coordinator and brings its engine up
// with ca as the coordinator's node calls.
func upWithCA(t *testing.T, ca *fakeCA) *client.Engine {
	t.Helper()
	ctx := context.Background()
	s := coordtest.Start(t, coordtest.Options{})
	stateDir := t.TempDir()
	dir, err := nodestate.Open(stateDir)
	if err != nil {
		t.Fatal(err)
	}
	id, err := agent.Enroll(ctx, dir, s.Token(t, wire.CreateTokenRequest{Role: wire.RoleClient, Name: "laptop", User: "alice@example.com"}).String(), wire.RoleClient, "")
	if err != nil {
		t.Fatal(err)
	}
	eng, err := client.New(client.Config{
		StateDir: stateDir, Platform: &fakePlatform{addr: id.Node.Address},
		NewNodeAPI: func(*nodestate.Identity) (client.NodeAPI, error) { return ca, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Up(ctx, ctl.UpRequest{}, func(ctl.Progress) {}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Down(context.Background()) })
	return eng
}

// userKey writes a public key into a fresh directory of the test's user.
func userKey(t *testing.T) ctl.SSHCertRequest {
	t.Helper()
	const pub = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl alice@laptop"
	p := filepath.Join(t.TempDir(), "id_ed25519.pub")
	if err := os.WriteFile(p, []byte(pub+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return ctl.SSHCertRequest{PublicKey: pub, KeyPath: p}
}

// TestSSHCertRenewal: a certificate is renewed at two thirds of its
// validity while the tunnel is up, not while it is down, and a failed
// renewal shows in status until one succeeds.
func TestSSHCertRenewal(t *testing.T) {
	ctx := context.Background()
	ca := &fakeCA{}
	eng := upWithCA(t, ca)
	req := userKey(t)
	const validity = 1500 * time.Millisecond // renewed every second
	req.Validity = wire.Duration(validity)
	me := ctl.Caller{UID: uint32(os.Getuid()), GID: uint32(os.Getgid())}
	res, err := eng.SSHCert(ctx, me, req)
	if err != nil {
		t.Fatal(err)
	}
	certPath := strings.TrimSuffix(req.KeyPath, ".pub") + "-cert.pub"
	if res.Path != certPath || res.KeyID != "alice@example.com" || !res.RenewAt.Before(res.ValidBefore) {
		t.Errorf("result = %+v", res)
	}
	first, err := os.ReadFile(certPath)
	if err != nil {
		t.Fatal(err)
	}

	// Liveness, not exact timing: three renewals come well within 10 s.
	testutil.WaitFor(t, "three renewals", func() bool { return ca.count() >= 4 })
	if now, _ := os.ReadFile(certPath); string(now) == string(first) {
		t.Error("the certificate file was not replaced by a renewal")
	}
	st := eng.Status(ctx)
	if len(st.SSH.Certs) != 1 || st.SSH.Certs[0].Path != certPath || st.SSH.Certs[0].Error != "" || st.SSH.Certs[0].UID != me.UID {
		t.Errorf("status ssh = %+v", st.SSH)
	}

	// A failure shows in status, and the next success clears it.
	ca.mu.Lock()
	ca.fail = &wire.Error{Code: wire.CodeNoPrincipals, Message: "no ssh rule lets alice@example.com log in as anybody"}
	ca.mu.Unlock()
	testutil.WaitFor(t, "the failed renewal in status", func() bool {
		cs := eng.Status(ctx).SSH.Certs
		return len(cs) == 1 && strings.Contains(cs[0].Error, "no ssh rule lets alice@example.com")
	})
	ca.mu.Lock()
	ca.fail = nil
	ca.mu.Unlock()
	testutil.WaitFor(t, "a renewal after the failure", func() bool {
		cs := eng.Status(ctx).SSH.Certs
		return len(cs) == 1 && cs[0].Error == ""
	})

	// Down stops renewing (Down waits for the renewal to end); up again
	// renews the certificate that is due by then.
	if err := eng.Down(ctx); err != nil {
		t.Fatal(err)
	}
	ca.mu.Lock()
	ca.closed = true
	ca.mu.Unlock()
	if left := testutil.Leaked("(*Engine).renewSSHCerts"); left != "" {
		t.Errorf("the renewal runs on after down:\n%s", left)
	}
	st = eng.Status(ctx)
	if len(st.SSH.Certs) != 1 {
		t.Fatalf("down: status ssh = %+v, want the registration kept", st.SSH)
	}
	// Past the renewal that came due while down, none has run.
	due := st.SSH.Certs[0].RenewAt.Add(100 * time.Millisecond)
	testutil.WaitFor(t, "the renewal due while down to pass", func() bool { return time.Now().After(due) })
	ca.mu.Lock()
	late, n := ca.lateErr, ca.calls
	ca.closed = false
	ca.mu.Unlock()
	if late != "" {
		t.Error(late)
	}
	if err := eng.Up(ctx, ctl.UpRequest{}, func(ctl.Progress) {}); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "a renewal after up", func() bool { return ca.count() > n })

	// Logout forgets the registration: nothing is renewed any more.
	if _, err := eng.Logout(ctx); err != nil {
		t.Fatal(err)
	}
	st = eng.Status(ctx)
	if st.Enrolled || len(st.SSH.Certs) != 0 {
		t.Errorf("after logout: enrolled %v, ssh %+v", st.Enrolled, st.SSH)
	}
	if left := testutil.Leaked("(*Engine).renewSSHCerts"); left != "" {
		t.Errorf("the renewal runs on after logout:\n%s", left)
	}
}

// TestSSHCertRefusals: bad paths and keys are refused before the
// coordinator is asked.
func TestSSHCertRefusals(t *testing.T) {
	ctx := context.Background()
	ca := &fakeCA{}
	eng := upWithCA(t, ca)
	good := userKey(t)
	me := ctl.Caller{UID: uint32(os.Getuid()), GID: uint32(os.Getgid())}
	tests := []struct {
		name string
		req  ctl.SSHCertRequest
		want string
	}{
		{"relative path", ctl.SSHCertRequest{PublicKey: good.PublicKey, KeyPath: "id_ed25519.pub"}, `"id_ed25519.pub" is not the absolute path of a public key file ending in .pub`},
		{"not .pub", ctl.SSHCertRequest{PublicKey: good.PublicKey, KeyPath: "/home/alice/.ssh/id_ed25519"}, `"/home/alice/.ssh/id_ed25519" is not the absolute path of a public key file ending in .pub`},
		{"unclean path", ctl.SSHCertRequest{PublicKey: good.PublicKey, KeyPath: "/home/alice/../bob/.ssh/id.pub"}, `"/home/alice/../bob/.ssh/id.pub" is not the absolute path of a public key file ending in .pub`},
		{"not a key", ctl.SSHCertRequest{PublicKey: "-----BEGIN OPENSSH PRIVATE KEY-----", KeyPath: good.KeyPath}, good.KeyPath + " does not hold one SSH public key"},
		{"two keys", ctl.SSHCertRequest{PublicKey: good.PublicKey + "\n" + good.PublicKey, KeyPath: good.KeyPath}, good.KeyPath + " does not hold one SSH public key"},
	}
	for _, tt := range tests {
		if _, err := eng.SSHCert(ctx, me, tt.req); err == nil || err.Error() != tt.want {
			t.Errorf("%s: error %v, want %s", tt.name, err, tt.want)
		}
	}
	if n := ca.count(); n != 0 {
		t.Errorf("the coordinator was asked %d times for refused requests", n)
	}
	ca.mu.Lock()
	ca.fail = errors.New("boom")
	ca.mu.Unlock()
	if _, err := eng.SSHCert(ctx, me, good); err == nil || err.Error() != "asking the coordinator for a certificate: boom" {
		t.Errorf("a refused certificate: %v", err)
	}
	if cs := eng.Status(ctx).SSH.Certs; len(cs) != 0 {
		t.Errorf("a refused certificate was registered: %+v", cs)
	}
}

// TestStatusSSHAs: status shows whom the policy's ssh rules let this
// node's user log in as, from the netmap the real coordinator sends.
func TestStatusSSHAs(t *testing.T) {
	ctx := context.Background()
	s := coordtest.Start(t, coordtest.Options{})
	stateDir := t.TempDir()
	dir, err := nodestate.Open(stateDir)
	if err != nil {
		t.Fatal(err)
	}
	id, err := agent.Enroll(ctx, dir, s.Token(t, wire.CreateTokenRequest{Role: wire.RoleClient, Name: "laptop", User: "alice@example.com"}).String(), wire.RoleClient, "")
	if err != nil {
		t.Fatal(err)
	}
	v := s.SetPolicy(t, `{
  "rules": [{"from": ["user:alice@example.com"], "to": ["10.1.0.0/16:443"]}],
  "ssh": [{"from": ["user:alice@example.com"], "to": ["10.1.0.0/16"], "as": ["deploy", "alice"]}],
}`)
	eng, err := client.New(client.Config{StateDir: stateDir, Platform: &fakePlatform{addr: id.Node.Address}})
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Up(ctx, ctl.UpRequest{}, func(ctl.Progress) {}); err != nil {
		t.Fatal(err)
	}
	defer eng.Down(ctx)
	waitVersion(t, eng, v)
	if as := eng.Status(ctx).SSH.As; !slices.Equal(as, []string{"alice", "deploy"}) {
		t.Errorf("status ssh as = %v, want [alice deploy]", as)
	}
}
