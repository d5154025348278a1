package coordclient_test

import (
	"context"
	"errors"
	"net/netip"
	"testing"

	"github.com/warrennet/warren/overlay/coordclient"
	"github.com/warrennet/warren/overlay/wire"
	"github.com/warrennet/warren/test/coordtest"
)

func TestEnroll(t *testing.T) {
	co := coordtest.Start(t, coordtest.Options{})
	tok := co.Token(t, wire.CreateTokenRequest{Role: wire.RoleConnector, Name: "office"})
	pub := mustKey(t).PublicKey()
	ctx := context.Background()
	resp, err := coordclient.Enroll(ctx, tok, wire.EnrollRequest{PublicKey: pub, Hostname: "office-gw"})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Credential == "" {
		t.Error("no credential")
	}
	want := wire.Node{Name: "office", Role: wire.RoleConnector, PublicKey: pub, Address: netip.MustParseAddr("100.96.0.1")}
	want.ID = resp.Node.ID
	if resp.Node != want {
		t.Errorf("Node = %+v, want %+v", resp.Node, want)
	}

	// The single-use token is spent: the coordinator's refusal comes back
	// as a *wire.Error with its code.
	_, err = coordclient.Enroll(ctx, tok, wire.EnrollRequest{PublicKey: pub})
	var we *wire.Error
	if !errors.As(err, &we) || we.Code != wire.CodeTokenUsed {
		t.Errorf("second Enroll: got %v, want a wire.Error with code %s", err, wire.CodeTokenUsed)
	}

	// A request without a key never leaves the node.
	if _, err := coordclient.Enroll(ctx, tok, wire.EnrollRequest{}); err == nil {
		t.Error("Enroll without a public key succeeded")
	}
	checkNoLeaks(t)
}
