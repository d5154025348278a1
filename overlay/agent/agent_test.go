package agent

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warrennet/warren/overlay/coordclient"
	"github.com/warrennet/warren/overlay/nodestate"
	"github.com/warrennet/warren/overlay/wire"
	"github.com/warrennet/warren/test/coordtest"
)

func TestEnrollOnceThenKeepIdentity(t *testing.T) {
	srv := coordtest.Start(t, coordtest.Options{})
	tok := srv.Token(t, wire.CreateTokenRequest{Role: wire.RoleConnector, Name: "office"})
	dir, err := nodestate.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	id, err := Enroll(ctx, dir, tok.String(), wire.RoleConnector, "gw")
	if err != nil {
		t.Fatal(err)
	}
	if id.Node.Name != "office" || id.Node.PublicKey != id.PrivateKey.PublicKey() {
		t.Errorf("identity = %+v", id.Node)
	}
	// A restart finds the identity: the spent single-use token is not used again.
	again, err := Enroll(ctx, dir, tok.String(), wire.RoleConnector, "gw")
	if err != nil {
		t.Fatalf("second start: %v", err)
	}
	if again.PrivateKey != id.PrivateKey || again.Node != id.Node {
		t.Errorf("identity changed across restarts")
	}
	if _, err := Enroll(ctx, dir, "", wire.RoleClient, "gw"); err == nil || !strings.Contains(err.Error(), "belongs to a connector, not a client") {
		t.Errorf("wrong role on an enrolled dir: %v", err)
	}
}

func TestEnrollErrors(t *testing.T) {
	srv := coordtest.Start(t, coordtest.Options{})
	ctx := context.Background()
	dir, err := nodestate.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	_, err = Enroll(ctx, dir, "", wire.RoleConnector, "")
	want := "this connector is not enrolled yet: pass --token-file FILE or set WARREN_TOKEN (an admin creates one with: warren token create --role connector --name NAME)"
	if err == nil || err.Error() != want {
		t.Errorf("no token: %v, want %s", err, want)
	}
	clientTok := srv.Token(t, wire.CreateTokenRequest{Role: wire.RoleClient, Name: "laptop"})
	_, err = Enroll(ctx, dir, clientTok.String(), wire.RoleConnector, "")
	if err == nil || !strings.Contains(err.Error(), `the token enrolled a client named "laptop", but this is a connector`) {
		t.Errorf("client token for a connector: %v", err)
	}
	if _, err := dir.LoadIdentity(); !errors.Is(err, nodestate.ErrNoIdentity) {
		t.Errorf("a refused enrollment saved an identity: %v", err)
	}

	// Tokens the coordinator refuses: its code comes through, and nothing
	// is saved.
	spent := srv.Token(t, wire.CreateTokenRequest{Role: wire.RoleConnector, Name: "office"})
	other, err := nodestate.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Enroll(ctx, other, spent.String(), wire.RoleConnector, ""); err != nil {
		t.Fatal(err)
	}
	created, err := srv.Coord.CreateToken(ctx, wire.CreateTokenRequest{Role: wire.RoleConnector, Name: "branch"})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Coord.RevokeToken(ctx, created.Info.ID); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, token, code string
	}{
		{"spent", spent.String(), wire.CodeTokenUsed},
		{"revoked", created.Token, wire.CodeTokenRevoked},
	} {
		_, err := Enroll(ctx, dir, tt.token, wire.RoleConnector, "")
		var we *wire.Error
		if !errors.As(err, &we) || we.Code != tt.code || !strings.HasPrefix(err.Error(), "enrolling: ") {
			t.Errorf("%s token: %v, want an enrolling error with code %s", tt.name, err, tt.code)
		}
		if _, err := dir.LoadIdentity(); !errors.Is(err, nodestate.ErrNoIdentity) {
			t.Errorf("%s token: the refused enrollment saved an identity: %v", tt.name, err)
		}
	}
}

func TestRunSavesAndReplaysNetMaps(t *testing.T) {
	srv := coordtest.Start(t, coordtest.Options{})
	srv.Enroll(t, wire.RoleConnector, "office", wire.Key{1, 31: 0x42})
	tok := srv.Token(t, wire.CreateTokenRequest{Role: wire.RoleClient, Name: "laptop"})
	dir, err := nodestate.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	id, err := Enroll(context.Background(), dir, tok.String(), wire.RoleClient, "")
	if err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	var applied []uint64
	apply := func(_ context.Context, nm *wire.NetMap) error {
		mu.Lock()
		defer mu.Unlock()
		applied = append(applied, nm.Version)
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	denials := make(chan wire.FlowRecord, 1)
	go func() {
		done <- Run(ctx, Config{Dir: dir, Identity: id, Apply: apply, OnDenial: func(r wire.FlowRecord) { denials <- r }})
	}()
	want := srv.Push(t)
	waitFor(t, func() bool { return srv.Acked("laptop") == want })

	// Denials a connector reports reach OnDenial.
	srv.ReportFlows(t, "office", wire.FlowRecord{ID: "d1", Node: "laptop", Proto: wire.ProtoTCP, Decision: wire.DecisionDeny, Reason: "denied"})
	select {
	case r := <-denials:
		if r.ID != "d1" {
			t.Errorf("OnDenial got %+v, want record d1", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("OnDenial was not called")
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v", err)
	}
	saved, err := dir.LoadNetMap()
	if err != nil {
		t.Fatal(err)
	}
	if saved.Version != want {
		t.Errorf("saved netmap version %d, want %d", saved.Version, want)
	}

	// With the coordinator gone, a restarted node still applies the saved
	// netmap straight away.
	srv.Close()
	mu.Lock()
	applied = nil
	mu.Unlock()
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	go func() {
		done <- Run(ctx, Config{Dir: dir, Identity: id, Apply: apply, Backoff: coordclient.Backoff{Min: 10 * time.Millisecond, Max: 50 * time.Millisecond}})
	}()
	waitFor(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(applied) == 1 && applied[0] == want
	})
	cancel()
	<-done
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
