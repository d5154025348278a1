package ctl

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

type fakeBackend struct {
	upErr   error
	downed  bool
	lanWins bool
}

func (f *fakeBackend) Status(context.Context) Status {
	return Status{State: StateUp, Enrolled: true, NetMapVersion: 7, Warnings: []string{"w"}}
}

func (f *fakeBackend) Up(_ context.Context, req UpRequest, progress func(string)) error {
	progress("enrolling with " + req.Token)
	progress("connecting")
	return f.upErr
}

func (f *fakeBackend) Why(_ context.Context, ip netip.Addr) (Why, error) {
	if !f.downed {
		return Why{IP: ip, Tunnelled: true, Reason: ip.String() + " is tunnelled"}, nil
	}
	return Why{}, errors.New("the tunnel is down")
}

func (f *fakeBackend) EditPrefs(_ context.Context, e PrefsEdit) (Prefs, error) {
	if e.LANWins != nil {
		f.lanWins = *e.LANWins
	}
	return Prefs{LANWins: f.lanWins}, nil
}

func (f *fakeBackend) Down(context.Context) error {
	f.downed = true
	return nil
}

func serve(t *testing.T, b Backend) *Client {
	t.Helper()
	path := filepath.Join(t.TempDir(), "warren.sock")
	ln, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Errorf("socket mode = %v, want 0600", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- NewServer(b, nil).Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	c := NewClient(path)
	t.Cleanup(c.Close)
	return c
}

func TestClientServer(t *testing.T) {
	b := &fakeBackend{}
	c := serve(t, b)
	ctx := context.Background()
	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != StateUp || st.NetMapVersion != 7 {
		t.Errorf("status = %+v", st)
	}
	var steps []string
	if err := c.Up(ctx, UpRequest{Token: "T"}, func(s string) { steps = append(steps, s) }); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"enrolling with T", "connecting"}, steps); diff != "" {
		t.Errorf("progress (-want +got):\n%s", diff)
	}
	why, err := c.Why(ctx, netip.MustParseAddr("192.168.0.10"))
	if err != nil || !why.Tunnelled || why.Reason != "192.168.0.10 is tunnelled" {
		t.Errorf("Why = %+v, %v", why, err)
	}
	yes := true
	if p, err := c.EditPrefs(ctx, PrefsEdit{LANWins: &yes}); err != nil || !p.LANWins {
		t.Errorf("EditPrefs = %+v, %v", p, err)
	}
	if p, err := c.EditPrefs(ctx, PrefsEdit{}); err != nil || !p.LANWins {
		t.Errorf("an empty edit changed the setting: %+v, %v", p, err)
	}
	b.upErr = errors.New("token has expired")
	if err := c.Up(ctx, UpRequest{}, nil); err == nil || err.Error() != "token has expired" {
		t.Errorf("Up error = %v", err)
	}
	if err := c.Down(ctx); err != nil || !b.downed {
		t.Errorf("Down = %v, downed %v", err, b.downed)
	}
	if _, err := c.Why(ctx, netip.MustParseAddr("192.168.0.10")); err == nil || err.Error() != "the tunnel is down" {
		t.Errorf("Why while down = %v", err)
	}
}

func TestNoDaemon(t *testing.T) {
	path := filepath.Join(t.TempDir(), "none.sock")
	_, err := NewClient(path).Status(context.Background())
	if !errors.Is(err, ErrNoDaemon) || !strings.Contains(err.Error(), path) {
		t.Errorf("Status without a daemon = %v", err)
	}
}

func TestListenRefusesLiveSocket(t *testing.T) {
	c := serve(t, &fakeBackend{})
	if _, err := Listen(c.path); err == nil || !strings.Contains(err.Error(), "another warren daemon") {
		t.Errorf("second Listen = %v", err)
	}
}
