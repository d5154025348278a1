package coordclient_test

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warrennet/warren/overlay/coord"
	"github.com/warrennet/warren/overlay/coord/sso"
	"github.com/warrennet/warren/overlay/coordclient"
	"github.com/warrennet/warren/overlay/wire"
	"github.com/warrennet/warren/test/coordtest"
)

// codeIdP vouches for whoever a code was given to. The real provider's
// checks are shown at the coordinator's API; here the client's calls are.
type codeIdP struct {
	mu     sync.Mutex
	byCode map[string]sso.Identity
}

func (p *codeIdP) AuthURL(state, _, _ string) string {
	return "https://idp.example.com/authorize?" + url.Values{"state": {state}}.Encode()
}

func (p *codeIdP) Exchange(_ context.Context, code, _, _ string) (sso.Identity, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if id, ok := p.byCode[code]; ok {
		return id, nil
	}
	return sso.Identity{}, errors.Join(sso.ErrRefused, errors.New("unknown code"))
}

func (p *codeIdP) Refresh(context.Context, string) (sso.Identity, error) {
	return sso.Identity{}, sso.ErrRevoked
}

func wireCode(err error) string {
	var we *wire.Error
	if errors.As(err, &we) {
		return we.Code
	}
	return ""
}

func TestLoginWithoutSSO(t *testing.T) {
	co := newCoordinator(t, coordtest.Options{})
	l, err := coordclient.NewLogin(co.URL, co.Pin)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, err = l.StartLogin(context.Background(), wire.LoginStartRequest{PublicKey: wire.Key{1}})
	if wireCode(err) != wire.CodeSSODisabled {
		t.Errorf("StartLogin = %v, want %s", err, wire.CodeSSODisabled)
	}
	if _, err := l.StartLogin(context.Background(), wire.LoginStartRequest{}); err == nil || wireCode(err) != "" {
		t.Errorf("StartLogin without a key = %v, want a local refusal", err)
	}
}

func TestLoginWaitLogout(t *testing.T) {
	defer checkNoLeaks(t)
	idp := &codeIdP{byCode: map[string]sso.Identity{"c1": {Issuer: "https://idp.example.com", Subject: "a", Email: "alice@example.com", Groups: []string{"eng"}}}}
	co := newCoordinator(t, coordtest.Options{IdentityProvider: func(string) coord.IdentityProvider { return idp }})
	ctx := context.Background()
	l, err := coordclient.NewLogin(co.URL, co.Pin)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	start, err := l.StartLogin(ctx, wire.LoginStartRequest{PublicKey: wire.Key{7, 31: 1}, Hostname: "alice-laptop"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(start.URL, co.URL+wire.PathLoginPage+"/") || start.Code == "" {
		t.Errorf("StartLogin = %+v", start)
	}
	// The person logs in while the laptop waits.
	type result struct {
		e   *wire.EnrollResponse
		err error
	}
	waited := make(chan result, 1)
	go func() {
		e, err := l.WaitLogin(ctx, start.WaitSecret)
		waited <- result{e, err}
	}()
	_, id, _ := strings.Cut(start.URL, wire.PathLoginPage+"/")
	to, err := co.Coord.LoginPage(id)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(to)
	if _, err := co.Coord.Callback(ctx, u.Query().Get("state"), "c1"); err != nil {
		t.Fatal(err)
	}
	r := <-waited
	if r.err != nil {
		t.Fatalf("WaitLogin: %v", r.err)
	}
	if r.e.Node.User != "alice@example.com" || r.e.Node.Name != "alice-laptop" {
		t.Errorf("enrolled %+v", r.e.Node)
	}
	// Once only.
	if _, err := l.WaitLogin(ctx, start.WaitSecret); wireCode(err) != wire.CodeLoginUsed {
		t.Errorf("WaitLogin again = %v, want %s", err, wire.CodeLoginUsed)
	}
	if _, err := l.WaitLogin(ctx, "not-a-secret"); wireCode(err) != wire.CodeLoginExpired {
		t.Errorf("WaitLogin with a wrong secret = %v, want %s", err, wire.CodeLoginExpired)
	}

	admin, err := coordclient.NewAdmin(co.Admin)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	users, err := admin.Users(ctx)
	if err != nil || len(users) != 1 || users[0].Email != "alice@example.com" || users[0].Source != wire.UserSourceSSO {
		t.Errorf("Users = %+v, %v", users, err)
	}

	n, err := coordclient.NewNodeClient(co.URL, co.Pin, r.e.Credential)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if err := n.Logout(ctx); err != nil {
		t.Fatal(err)
	}
	if err := n.Logout(ctx); wireCode(err) != wire.CodeUnauthorized {
		t.Errorf("Logout again = %v, want %s", err, wire.CodeUnauthorized)
	}
	if err := admin.RemoveUser(ctx, "alice@example.com"); err != nil {
		t.Fatal(err)
	}
	if err := admin.RemoveUser(ctx, "alice@example.com"); wireCode(err) != wire.CodeNotFound {
		t.Errorf("RemoveUser again = %v, want %s", err, wire.CodeNotFound)
	}
}

func TestWaitLoginEndsWithContext(t *testing.T) {
	// Nothing listens: WaitLogin keeps trying until its context ends.
	l, err := coordclient.NewLogin("https://127.0.0.1:1", "")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := l.WaitLogin(ctx, "s"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WaitLogin = %v, want the context's deadline", err)
	}
}
