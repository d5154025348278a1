package agent

import (
	"context"
	"errors"
	"testing"

	"github.com/warrennet/warren/overlay/nodestate"
	"github.com/warrennet/warren/overlay/wire"
	"github.com/warrennet/warren/test/coordtest"
)

// TestLoginEnrollRefusals: a login is refused, before anything is asked
// or saved, on a node already enrolled and for a coordinator URL that is
// not one; a coordinator without single sign-on says so in one line. The
// flow itself is overlay/client's tests' (against the real coordinator
// and provider).
func TestLoginEnrollRefusals(t *testing.T) {
	ctx := context.Background()
	srv := coordtest.Start(t, coordtest.Options{})
	dir, err := nodestate.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	shown := false
	cfg := LoginConfig{URL: srv.URL, Pin: srv.Pin, Hostname: "laptop\x1b[31m", Show: func(wire.LoginStartResponse) { shown = true }}
	if _, err := LoginEnroll(ctx, dir, cfg); !errors.Is(err, ErrNoSSO) {
		t.Errorf("without sso = %v, want ErrNoSSO", err)
	}
	bad := cfg
	bad.URL = "ftp://coordinator"
	if _, err := LoginEnroll(ctx, dir, bad); err == nil {
		t.Error("a login at ftp:// was not refused")
	}
	if _, err := Enroll(ctx, dir, srv.Token(t, wire.CreateTokenRequest{Role: wire.RoleClient, Name: "laptop"}).String(), wire.RoleClient, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := LoginEnroll(ctx, dir, cfg); err == nil || err.Error() != "this node is already enrolled: log out first (warren logout)" {
		t.Errorf("enrolled = %v", err)
	}
	if shown {
		t.Error("a refused login showed a link")
	}
}
