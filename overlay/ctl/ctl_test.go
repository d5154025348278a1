package ctl

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/warrennet/warren/overlay/wire"
)

type fakeBackend struct {
	mu       sync.Mutex // guards the fields below: calls come from the server's goroutines
	upErr    error
	downed   bool
	lanWins  bool
	lastWhy  WhyQuery
	operator *Operator
	echo     string // the address Dial connects "echo" to
}

func (f *fakeBackend) Status(context.Context) Status {
	return Status{State: StateUp, Enrolled: true, NetMapVersion: 7, Warnings: []string{"w"}}
}

func (f *fakeBackend) Up(_ context.Context, req UpRequest, progress func(Progress)) error {
	progress(Progress{Message: "enrolling with " + req.Token})
	progress(Progress{Message: "connecting"})
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.upErr
}

func (f *fakeBackend) Login(_ context.Context, req UpRequest, progress func(Progress)) error {
	progress(Progress{Message: "log in", LoginURL: req.Coordinator + "/login/x", Code: "ABCD-EFGH"})
	return nil
}

func (f *fakeBackend) Logout(context.Context) (LogoutResult, error) {
	return LogoutResult{Node: "laptop", Removed: true}, nil
}

func (f *fakeBackend) Prefs(context.Context) Prefs {
	f.mu.Lock()
	defer f.mu.Unlock()
	return Prefs{LANWins: f.lanWins, Operator: f.operator}
}

func (f *fakeBackend) SSHCert(_ context.Context, c Caller, req SSHCertRequest) (SSHCertResult, error) {
	return SSHCertResult{Path: fmt.Sprintf("%s as uid %d", req.KeyPath, c.UID)}, nil
}

func (f *fakeBackend) Why(_ context.Context, q WhyQuery) (Why, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastWhy = q
	if !f.downed {
		return Why{IP: q.IP, Tunnelled: true, Reason: q.IP.String() + " is tunnelled"}, nil
	}
	return Why{}, errors.New("the tunnel is down")
}

func (f *fakeBackend) EditPrefs(_ context.Context, e PrefsEdit) (Prefs, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if e.LANWins != nil {
		f.lanWins = *e.LANWins
	}
	return Prefs{LANWins: f.lanWins, Operator: f.operator}, nil
}

// DialContext connects to the loopback echo server dialEcho names for the host
// "echo"; any other host is refused.
func (f *fakeBackend) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(address)
	if err != nil || network != "tcp" {
		return nil, fmt.Errorf("bad dial %s %q", network, address)
	}
	f.mu.Lock()
	echo := f.echo
	f.mu.Unlock()
	if host != "echo" || echo == "" {
		return nil, fmt.Errorf("dialing %s: connection refused", net.JoinHostPort(host, port))
	}
	var d net.Dialer
	return d.DialContext(ctx, "tcp", echo)
}

func (f *fakeBackend) Down(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.downed = true
	return nil
}

func serve(t *testing.T, b Backend) *Client {
	t.Helper()
	return serveIn(t, t.TempDir(), b)
}

func serveIn(t *testing.T, dir string, b Backend) *Client {
	t.Helper()
	path := filepath.Join(dir, "warren.sock")
	ln, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o666 {
		t.Errorf("socket mode = %v, want 0666 (each request is authorised)", got)
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
	if err := c.Up(ctx, UpRequest{Token: "T"}, func(p Progress) { steps = append(steps, p.Message) }); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"enrolling with T", "connecting"}, steps); diff != "" {
		t.Errorf("progress (-want +got):\n%s", diff)
	}
	ip := netip.MustParseAddr("192.168.0.10")
	for _, q := range []WhyQuery{
		{IP: ip},
		{IP: ip, Port: 8080, HasPort: true},
		{IP: ip, Port: 0, HasPort: true, Proto: wire.ProtoUDP},
		{IP: netip.MustParseAddr("2001:db8::1"), Proto: wire.ProtoICMP},
	} {
		why, err := c.Why(ctx, q)
		if err != nil || !why.Tunnelled || why.Reason != q.IP.String()+" is tunnelled" {
			t.Errorf("Why(%+v) = %+v, %v", q, why, err)
		}
		b.mu.Lock()
		got := b.lastWhy
		b.mu.Unlock()
		if got != q {
			t.Errorf("the daemon got %+v, want %+v", got, q)
		}
	}
	yes := true
	if p, err := c.EditPrefs(ctx, PrefsEdit{LANWins: &yes}); err != nil || !p.LANWins {
		t.Errorf("EditPrefs = %+v, %v", p, err)
	}
	if p, err := c.EditPrefs(ctx, PrefsEdit{}); err != nil || !p.LANWins {
		t.Errorf("an empty edit changed the setting: %+v, %v", p, err)
	}
	var login []Progress
	if err := c.Login(ctx, UpRequest{Coordinator: "https://c"}, func(p Progress) { login = append(login, p) }); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]Progress{{Message: "log in", LoginURL: "https://c/login/x", Code: "ABCD-EFGH"}}, login); diff != "" {
		t.Errorf("login progress (-want +got):\n%s", diff)
	}
	b.mu.Lock()
	b.upErr = errors.New("token has expired")
	b.mu.Unlock()
	if err := c.Up(ctx, UpRequest{}, nil); err == nil || err.Error() != "token has expired" {
		t.Errorf("Up error = %v", err)
	}
	if err := c.Down(ctx); err != nil {
		t.Errorf("Down = %v", err)
	}
	b.mu.Lock()
	downed := b.downed
	b.mu.Unlock()
	if !downed {
		t.Error("Down did not reach the daemon")
	}
	if _, err := c.Why(ctx, WhyQuery{IP: ip}); err == nil || err.Error() != "the tunnel is down" {
		t.Errorf("Why while down = %v", err)
	}
}

func TestParseWhyQuery(t *testing.T) {
	tests := []struct {
		query string
		want  WhyQuery
		err   string
	}{
		{"ip=192.168.0.10", WhyQuery{IP: netip.MustParseAddr("192.168.0.10")}, ""},
		{"ip=::ffff:192.168.0.10&port=22", WhyQuery{IP: netip.MustParseAddr("192.168.0.10"), Port: 22, HasPort: true}, ""},
		{"ip=192.168.0.10&port=53&proto=udp", WhyQuery{IP: netip.MustParseAddr("192.168.0.10"), Port: 53, HasPort: true, Proto: wire.ProtoUDP}, ""},
		{"ip=192.168.0.10&proto=icmp", WhyQuery{IP: netip.MustParseAddr("192.168.0.10"), Proto: wire.ProtoICMP}, ""},
		{"ip=192.168.0.300", WhyQuery{}, `"192.168.0.300" is not an IP address`},
		{"ip=fe80::1%25eth0", WhyQuery{}, `"fe80::1%eth0" is not an IP address`},
		{"ip=192.168.0.10&port=65536", WhyQuery{}, `"65536" is not a port number (0-65535)`},
		{"ip=192.168.0.10&port=22&proto=any", WhyQuery{}, `protocol "any" is not one of: tcp, udp, icmp`},
	}
	for _, tt := range tests {
		v, _ := url.ParseQuery(tt.query)
		got, err := parseWhyQuery(v)
		if tt.err != "" {
			if err == nil || err.Error() != tt.err {
				t.Errorf("%s: error %v, want %q", tt.query, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%s = %+v, %v; want %+v", tt.query, got, err, tt.want)
		}
	}
}

func TestWhyQueryFlow(t *testing.T) {
	ip := netip.MustParseAddr("192.168.0.10")
	tests := []struct {
		q          WhyQuery
		port       uint16
		proto      wire.Proto
		wantIsFlow bool
	}{
		{WhyQuery{IP: ip}, 0, "", false},
		{WhyQuery{IP: ip, Proto: wire.ProtoUDP}, 0, "", false},
		{WhyQuery{IP: ip, Port: 8080, HasPort: true}, 8080, wire.ProtoTCP, true},
		{WhyQuery{IP: ip, Port: 53, HasPort: true, Proto: wire.ProtoUDP}, 53, wire.ProtoUDP, true},
		{WhyQuery{IP: ip, Proto: wire.ProtoICMP}, 0, wire.ProtoICMP, true},
		{WhyQuery{IP: ip, Port: 7, HasPort: true, Proto: wire.ProtoICMP}, 0, wire.ProtoICMP, true},
	}
	for _, tt := range tests {
		port, proto, ok := tt.q.Flow()
		if port != tt.port || proto != tt.proto || ok != tt.wantIsFlow {
			t.Errorf("%+v.Flow() = %d, %q, %v; want %d, %q, %v", tt.q, port, proto, ok, tt.port, tt.proto, tt.wantIsFlow)
		}
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
