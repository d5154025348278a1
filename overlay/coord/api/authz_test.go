package api_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/crypto/ssh"

	"github.com/warrennet/warren/overlay/coord"
	"github.com/warrennet/warren/overlay/coord/api"
	"github.com/warrennet/warren/overlay/coord/sso"
	"github.com/warrennet/warren/overlay/wire"
	"github.com/warrennet/warren/test/coordtest"
)

// cred is a column of the authorization matrix: what a caller presents
// as its bearer.
type cred int

const (
	credNone         cred = iota // no Authorization header
	credGarbage                  // a string the coordinator never issued
	credExpired                  // an expired client token
	credRevoked                  // a revoked client token
	credUsed                     // a single-use token that has enrolled its node
	credRevokedAdmin             // a revoked admin token
	credEnrollToken              // an active, reusable client token
	credRemoved                  // the credential of a client an admin removed
	credClient                   // an enrolled client's credential
	credConnector                // an enrolled connector's credential
	credAdmin                    // an active admin token
	numCreds
)

var credNames = [numCreds]string{
	"no credential", "garbage", "expired token", "revoked token", "used token", "revoked admin token",
	"enroll token", "removed node", "client node", "connector node", "admin token",
}

// cell is what one credential gets from one endpoint: the status, and
// the error code of the body ("" for a success).
type cell struct {
	status int
	code   string
}

type row [numCreds]cell

var unauthorized = cell{http.StatusUnauthorized, wire.CodeUnauthorized}

// refused is a row where every credential is refused as unauthorized.
func refused() row {
	var r row
	for i := range r {
		r[i] = unauthorized
	}
	return r
}

// anyone: every credential, or none, gets ok.
func anyone(ok int) row {
	var r row
	for i := range r {
		r[i] = cell{ok, ""}
	}
	return r
}

// adminOnly: only an active admin token gets ok.
func adminOnly(ok int) row {
	r := refused()
	r[credAdmin] = cell{ok, ""}
	return r
}

// nodeOnly: the credential of an enrolled node of either role gets ok.
func nodeOnly(ok int) row {
	r := refused()
	r[credClient] = cell{ok, ""}
	r[credConnector] = cell{ok, ""}
	return r
}

// connectorOnly: only an enrolled connector's credential gets ok.
func connectorOnly(ok int) row {
	r := refused()
	r[credConnector] = cell{ok, ""}
	return r
}

// enrollRow: only an active client or connector token enrolls. Spent
// tokens say why; an admin token is told it enrolls nothing; node
// credentials are not tokens.
func enrollRow() row {
	r := refused()
	r[credExpired] = cell{http.StatusForbidden, wire.CodeTokenExpired}
	r[credRevoked] = cell{http.StatusForbidden, wire.CodeTokenRevoked}
	r[credUsed] = cell{http.StatusForbidden, wire.CodeTokenUsed}
	r[credRevokedAdmin] = cell{http.StatusBadRequest, wire.CodeInvalid}
	r[credAdmin] = cell{http.StatusBadRequest, wire.CodeInvalid}
	r[credEnrollToken] = cell{http.StatusOK, ""}
	return r
}

// authzCase is one row of the matrix: a plausible request to the
// endpoint (path parameters naming things the fixture holds, a body an
// admin's call would succeed with) and what each credential gets.
type authzCase struct {
	auth api.Auth
	path string
	body func() string
	want row
}

func jsonBody(v any) func() string {
	return func() string {
		b, err := json.Marshal(v)
		if err != nil {
			panic(err)
		}
		return string(b)
	}
}

// enrollBody is a fresh key for every call, so that a refusal is never
// about the key.
func enrollBody() string {
	var k wire.Key
	if _, err := rand.Read(k[:]); err != nil {
		panic(err)
	}
	return jsonBody(wire.EnrollRequest{PublicKey: k, Hostname: "host"})()
}

func flowReportBody() string {
	start := time.Now().UTC().Truncate(time.Millisecond)
	return jsonBody(wire.FlowReport{Records: []wire.FlowRecord{{
		ID: "r1", User: "alice@example.com", Node: "laptop",
		Src: netip.MustParseAddrPort("100.96.0.2:40000"), Dst: netip.MustParseAddrPort("10.1.0.5:22"),
		Proto: wire.ProtoTCP, Decision: wire.DecisionDeny, Reason: "test", Start: start, End: start.Add(time.Second),
	}}})()
}

const authzPolicy = `{"rules": [{"from": ["user:alice@example.com"], "to": ["db:5432"]}]}`

// authzMatrix must name exactly the endpoints api.Endpoints lists: an
// endpoint added to the table without a row here fails the test.
var authzMatrix = map[string]authzCase{
	"GET " + wire.PathHealth:                             {api.AuthNone, wire.PathHealth, nil, anyone(http.StatusOK)},
	"POST " + wire.PathEnroll:                            {api.AuthEnrollToken, wire.PathEnroll, enrollBody, enrollRow()},
	"POST " + wire.PathStream:                            {api.AuthNode, wire.PathStream, nil, nodeOnly(http.StatusOK)},
	"POST " + wire.PathFlowReport:                        {api.AuthConnector, wire.PathFlowReport, flowReportBody, connectorOnly(http.StatusOK)},
	"GET " + wire.PathFlows:                              {api.AuthAdmin, wire.PathFlows + "?denied=true&limit=10", nil, adminOnly(http.StatusOK)},
	"POST " + wire.PathTokens:                            {api.AuthAdmin, wire.PathTokens, jsonBody(wire.CreateTokenRequest{Role: wire.RoleClient, Name: "phone"}), adminOnly(http.StatusCreated)},
	"GET " + wire.PathTokens:                             {api.AuthAdmin, wire.PathTokens, nil, adminOnly(http.StatusOK)},
	"DELETE " + wire.PathTokens + "/{id}":                {api.AuthAdmin, wire.PathTokens + "/{spare}", nil, adminOnly(http.StatusNoContent)},
	"POST " + wire.PathRoutes:                            {api.AuthAdmin, wire.PathRoutes, jsonBody(wire.AddRouteRequest{Prefix: "10.2.0.0/16", Connector: "office", Comment: "lab"}), adminOnly(http.StatusOK)},
	"GET " + wire.PathRoutes:                             {api.AuthAdmin, wire.PathRoutes, nil, adminOnly(http.StatusOK)},
	"DELETE " + wire.PathRoutes + "/{addr}/{bits}":       {api.AuthAdmin, wire.PathRoutes + "/10.1.0.0/16", nil, adminOnly(http.StatusNoContent)},
	"GET " + wire.PathRouteLookup:                        {api.AuthAdmin, wire.PathRouteLookup + "?ip=10.1.0.5", nil, adminOnly(http.StatusOK)},
	"GET " + wire.PathNodes:                              {api.AuthAdmin, wire.PathNodes, nil, adminOnly(http.StatusOK)},
	"DELETE " + wire.PathNodes + "/{name}":               {api.AuthAdmin, wire.PathNodes + "/laptop", nil, adminOnly(http.StatusNoContent)},
	"GET " + wire.PathExport:                             {api.AuthAdmin, wire.PathExport, nil, adminOnly(http.StatusOK)},
	"GET " + wire.PathSplit:                              {api.AuthAdmin, wire.PathSplit, nil, adminOnly(http.StatusOK)},
	"POST " + wire.PathSplitMode:                         {api.AuthAdmin, wire.PathSplitMode, jsonBody(wire.SplitModeRequest{Mode: wire.SplitInclude}), adminOnly(http.StatusOK)},
	"POST " + wire.PathSplitEntries:                      {api.AuthAdmin, wire.PathSplitEntries, jsonBody(wire.SplitEntryRequest{Prefix: "10.8.0.0/16", Comment: "printers"}), adminOnly(http.StatusOK)},
	"DELETE " + wire.PathSplitEntries + "/{addr}/{bits}": {api.AuthAdmin, wire.PathSplitEntries + "/10.9.0.0/16", nil, adminOnly(http.StatusOK)},
	"POST " + wire.PathSplitReset:                        {api.AuthAdmin, wire.PathSplitReset, nil, adminOnly(http.StatusOK)},
	"GET " + wire.PathSplitEffective:                     {api.AuthAdmin, wire.PathSplitEffective, nil, adminOnly(http.StatusOK)},
	"GET " + wire.PathHosts:                              {api.AuthAdmin, wire.PathHosts, nil, adminOnly(http.StatusOK)},
	"POST " + wire.PathHosts:                             {api.AuthAdmin, wire.PathHosts, jsonBody(wire.AddHostRequest{Name: "web", Address: "10.1.0.6", Comment: "intranet"}), adminOnly(http.StatusCreated)},
	"DELETE " + wire.PathHosts + "/{name}":               {api.AuthAdmin, wire.PathHosts + "/db", nil, adminOnly(http.StatusNoContent)},
	"GET " + wire.PathDNS:                                {api.AuthAdmin, wire.PathDNS, nil, adminOnly(http.StatusOK)},
	"POST " + wire.PathDNS:                               {api.AuthAdmin, wire.PathDNS, jsonBody(wire.SetDNSRequest{Domain: "lab.example", Servers: []string{"10.1.0.53"}}), adminOnly(http.StatusOK)},
	"DELETE " + wire.PathDNS + "/{domain}":               {api.AuthAdmin, wire.PathDNS + "/corp.example", nil, adminOnly(http.StatusNoContent)},
	"GET " + wire.PathPolicy:                             {api.AuthAdmin, wire.PathPolicy, nil, adminOnly(http.StatusOK)},
	"PUT " + wire.PathPolicy:                             {api.AuthAdmin, wire.PathPolicy, jsonBody(wire.SetPolicyRequest{Document: authzPolicy}), adminOnly(http.StatusOK)},
	"POST " + wire.PathPolicyReset:                       {api.AuthAdmin, wire.PathPolicyReset, nil, adminOnly(http.StatusOK)},
	"GET " + wire.PathPolicyWhy:                          {api.AuthAdmin, wire.PathPolicyWhy + "?user=alice%40example.com&dest=10.1.0.5%3A22", nil, adminOnly(http.StatusOK)},

	"POST " + wire.PathSSHCert:              {api.AuthUserClient, wire.PathSSHCert, sshCertBody, userClientOnly(http.StatusOK)},
	"GET " + wire.PathSSHCA:                 {api.AuthAdmin, wire.PathSSHCA, nil, adminOnly(http.StatusOK)},
	"POST " + wire.PathSSHCARotate:          {api.AuthAdmin, wire.PathSSHCARotate, jsonBody(wire.SSHCARotateRequest{Overlap: wire.Duration(time.Hour)}), adminOnly(http.StatusOK)},
	"GET " + wire.PathSSHCALog:              {api.AuthAdmin, wire.PathSSHCALog + "?user=alice%40example.com&limit=5", nil, adminOnly(http.StatusOK)},
	"POST " + wire.PathLogin:                {api.AuthNone, wire.PathLogin, loginBody, anyone(http.StatusOK)},
	"POST " + wire.PathLoginWait:            {api.AuthNone, wire.PathLoginWait, jsonBody(wire.LoginWaitRequest{WaitSecret: "guess"}), everyone(cell{http.StatusGone, wire.CodeLoginExpired})},
	"GET " + wire.PathLoginPage + "/{id}":   {api.AuthNone, wire.PathLoginPage + "/00112233445566778899aabbccddeeff", nil, everyone(cell{http.StatusNotFound, htmlPage})},
	"GET " + wire.PathOIDCCallback:          {api.AuthNone, wire.PathOIDCCallback + "?state=forged&code=c", nil, everyone(cell{http.StatusNotFound, htmlPage})},
	"POST " + wire.PathLogout:               {api.AuthNode, wire.PathLogout, nil, clientOnly(http.StatusNoContent)},
	"GET " + wire.PathUsers:                 {api.AuthAdmin, wire.PathUsers, nil, adminOnly(http.StatusOK)},
	"DELETE " + wire.PathUsers + "/{email}": {api.AuthAdmin, wire.PathUsers + "/alice@example.com", nil, adminOnly(http.StatusNoContent)},
}

// htmlPage is the code of a cell answered with an HTML page (the login
// pages a browser opens), not a JSON error.
const htmlPage = "(html page)"

// everyone: every credential, or none, gets c.
func everyone(c cell) row {
	var r row
	for i := range r {
		r[i] = c
	}
	return r
}

// clientOnly: only an enrolled client's credential gets ok.
func clientOnly(ok int) row {
	r := refused()
	r[credClient] = cell{ok, ""}
	return r
}

// loginBody starts a login for a fresh key.
func loginBody() string {
	var k wire.Key
	if _, err := rand.Read(k[:]); err != nil {
		panic(err)
	}
	return jsonBody(wire.LoginStartRequest{PublicKey: k, Hostname: "laptop"})()
}

// refusingIdP is an identity provider that refuses everyone: the matrix
// needs single sign-on on, not anybody logged in.
type refusingIdP struct{}

func (refusingIdP) AuthURL(state, nonce, verifier string) string {
	return "https://idp.invalid/authorize?state=" + state
}

func (refusingIdP) Exchange(context.Context, string, string, string) (sso.Identity, error) {
	return sso.Identity{}, sso.ErrRefused
}

func (refusingIdP) Refresh(context.Context, string) (sso.Identity, error) {
	return sso.Identity{}, sso.ErrRevoked
}

// userClientOnly: only an enrolled client with a user gets ok; a
// connector is told it may not (its credential is valid).
func userClientOnly(ok int) row {
	r := refused()
	r[credClient] = cell{ok, ""}
	r[credConnector] = cell{http.StatusForbidden, wire.CodeForbidden}
	return r
}

// sshCertBody asks for a certificate on a fresh Ed25519 key.
func sshCertBody() string {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		panic(err)
	}
	return jsonBody(wire.SSHCertRequest{PublicKey: string(ssh.MarshalAuthorizedKey(k))})()
}

// authzFixturePolicy lets the fixture's client (alice) log in over SSH as
// alice, so that its certificate request succeeds.
const authzFixturePolicy = `{"rules": [{"from": ["user:alice@example.com"], "to": ["10.1.0.5:5432"]}],
  "ssh": [{"from": ["user:alice@example.com"], "to": ["10.1.0.5"], "as": ["alice"]}]}`

// TestAuthorizationMatrix calls every endpoint with every kind of
// credential against a real coordinator, checks the exact status and
// error code of each cell, and that a refused call changed nothing.
func TestAuthorizationMatrix(t *testing.T) {
	var keys []string
	for _, e := range api.Endpoints() {
		k := e.Method + " " + e.Pattern
		keys = append(keys, k)
		c, ok := authzMatrix[k]
		if !ok {
			t.Errorf("endpoint %s (%s) has no row in authzMatrix", k, e.Auth)
			continue
		}
		if c.auth != e.Auth {
			t.Errorf("endpoint %s: the table says %s, the matrix %s", k, e.Auth, c.auth)
		}
	}
	for k := range authzMatrix {
		if !slices.Contains(keys, k) {
			t.Errorf("authzMatrix row %s is not an endpoint of api.Endpoints", k)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	for _, k := range slices.Sorted(maps.Keys(authzMatrix)) {
		c := authzMatrix[k]
		t.Run(strings.ReplaceAll(k, "/", "_"), func(t *testing.T) {
			f := newAuthzFixture(t)
			method, _, _ := strings.Cut(k, " ")
			path := strings.ReplaceAll(c.path, "{spare}", f.spareID)
			// The admin's cell last: it is the one that may change state.
			order := make([]cred, 0, numCreds)
			for cr := range numCreds {
				if cr != credAdmin {
					order = append(order, cr)
				}
			}
			order = append(order, credAdmin)
			for _, cr := range order {
				want := c.want[cr]
				before := f.state(t)
				got := f.call(t, method, path, f.creds[cr], c.body)
				if got != want {
					t.Errorf("%s with %s: got %d %q, want %d %q", k, credNames[cr], got.status, got.code, want.status, want.code)
				}
				if got.status >= 400 {
					if diff := cmp.Diff(before, f.state(t)); diff != "" {
						t.Errorf("%s with %s was refused but changed the state (-before +after):\n%s", k, credNames[cr], diff)
					}
				}
			}
		})
	}
}

// authzFixture is a coordinator holding one of everything the matrix
// needs, and the credentials of its columns.
type authzFixture struct {
	*coordtest.Server
	hc      *http.Client
	creds   [numCreds]string
	spareID string // a token DELETE may revoke
}

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func newAuthzFixture(t *testing.T) *authzFixture {
	t.Helper()
	ctx := context.Background()
	clk := &fakeClock{now: time.Now().UTC()}
	s := coordtest.Start(t, coordtest.Options{Now: clk.Now, IdentityProvider: func(string) coord.IdentityProvider { return refusingIdP{} }})
	co := s.Coord
	token := func(req wire.CreateTokenRequest) wire.CreateTokenResponse {
		t.Helper()
		resp, err := co.CreateToken(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	secret := func(resp wire.CreateTokenResponse) string {
		t.Helper()
		tok, err := wire.ParseToken(resp.Token)
		if err != nil {
			t.Fatal(err)
		}
		return tok.Secret
	}
	f := &authzFixture{Server: s, hc: pinnedClient(t, s.Pin)}
	f.creds[credGarbage] = "garbage"
	f.creds[credAdmin] = s.Admin.Secret

	expired := token(wire.CreateTokenRequest{Role: wire.RoleClient, Name: "late", Reusable: true, ExpiresIn: wire.Duration(time.Hour)})
	f.creds[credExpired] = secret(expired)
	revoked := token(wire.CreateTokenRequest{Role: wire.RoleClient, Name: "taken-back", Reusable: true})
	f.creds[credRevoked] = secret(revoked)
	admin2, err := co.CreateAdminToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	f.creds[credRevokedAdmin] = secret(admin2)
	f.creds[credEnrollToken] = secret(token(wire.CreateTokenRequest{Role: wire.RoleClient, Name: "fleet", Reusable: true, User: "bob@example.com"}))
	f.spareID = token(wire.CreateTokenRequest{Role: wire.RoleConnector, Name: "spare"}).Info.ID
	for _, id := range []string{revoked.Info.ID, admin2.Info.ID} {
		if err := co.RevokeToken(ctx, id); err != nil {
			t.Fatal(err)
		}
	}

	enroll := func(role wire.Role, name, user string, key byte) string {
		t.Helper()
		resp, err := co.Enroll(ctx, secret(token(wire.CreateTokenRequest{Role: role, Name: name, User: user})), wire.EnrollRequest{PublicKey: wire.Key{key, 31: 0x42}})
		if err != nil {
			t.Fatal(err)
		}
		return resp.Credential
	}
	f.creds[credConnector] = enroll(wire.RoleConnector, "office", "", 1)
	used := secret(token(wire.CreateTokenRequest{Role: wire.RoleClient, Name: "desktop"}))
	if _, err := co.Enroll(ctx, used, wire.EnrollRequest{PublicKey: wire.Key{4, 31: 0x42}}); err != nil {
		t.Fatal(err)
	}
	f.creds[credUsed] = used
	f.creds[credClient] = enroll(wire.RoleClient, "laptop", "alice@example.com", 2)
	f.creds[credRemoved] = enroll(wire.RoleClient, "stolen", "alice@example.com", 3)
	if err := co.RemoveNode(ctx, "stolen"); err != nil {
		t.Fatal(err)
	}

	if _, err := co.AddRoute(ctx, wire.AddRouteRequest{Prefix: "10.1.0.0/16", Connector: "office"}); err != nil {
		t.Fatal(err)
	}
	if _, err := co.AddHost(ctx, wire.AddHostRequest{Name: "db", Address: "10.1.0.5"}); err != nil {
		t.Fatal(err)
	}
	// The domain's server is outside 10.1.0.0/16, which a cell removes.
	if _, err := co.AddRoute(ctx, wire.AddRouteRequest{Prefix: "10.3.0.0/16", Connector: "office"}); err != nil {
		t.Fatal(err)
	}
	if _, err := co.SetDNS(ctx, wire.SetDNSRequest{Domain: "corp.example", Servers: []string{"10.3.0.53"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := co.AddSplitEntry(ctx, wire.SplitEntryRequest{Prefix: "10.9.0.0/16"}); err != nil {
		t.Fatal(err)
	}
	if _, err := co.SetPolicy(ctx, wire.SetPolicyRequest{Document: authzFixturePolicy}); err != nil {
		t.Fatal(err)
	}
	clk.Advance(2 * time.Hour) // past the expired token's hour
	return f
}

func pinnedClient(t *testing.T, pin string) *http.Client {
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{ForceAttemptHTTP2: true, TLSClientConfig: &tls.Config{
		InsecureSkipVerify: true, // the pin below replaces chain verification, as in coordclient
		VerifyConnection: func(cs tls.ConnectionState) error {
			sum := sha256.Sum256(cs.PeerCertificates[0].Raw)
			if hex.EncodeToString(sum[:]) != pin {
				return errors.New("certificate does not match the pin")
			}
			return nil
		},
	}}}
	t.Cleanup(hc.CloseIdleConnections)
	return hc
}

// authzState is everything a refused call must leave as it was.
type authzState struct {
	Export   wire.Export
	Flows    []wire.FlowRecord
	SSHCA    wire.SSHCA
	SSHCerts []wire.SSHCertRecord
}

// state returns the coordinator's state as indented JSON, for a diff.
func (f *authzFixture) state(t *testing.T) string {
	t.Helper()
	flows, err := f.Coord.Flows(context.Background(), coord.FlowQuery{})
	if err != nil {
		t.Fatal(err)
	}
	ca, err := f.Coord.SSHCA()
	if err != nil {
		t.Fatal(err)
	}
	certs, err := f.Coord.SSHCertLog(context.Background(), "", 0)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.MarshalIndent(authzState{Export: f.Coord.Export(), Flows: flows, SSHCA: ca, SSHCerts: certs}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// call makes one request and returns its cell. A control stream that
// opens is closed once its headers are in.
func (f *authzFixture) call(t *testing.T, method, path, secret string, body func() string) cell {
	t.Helper()
	var rd io.Reader = http.NoBody
	if body != nil {
		rd = strings.NewReader(body())
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, f.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if secret != "" {
		req.Header.Set("Authorization", "Bearer "+secret)
	}
	resp, err := f.hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK && resp.Header.Get("Content-Type") == "application/x-ndjson" {
		return cell{resp.StatusCode, ""}
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, path, err)
	}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		return cell{resp.StatusCode, htmlPage}
	}
	if resp.StatusCode < 400 {
		var e wire.Error
		if json.Unmarshal(b, &e) == nil && e.Code != "" && e.Message != "" {
			t.Errorf("%s %s: status %d with an error body %s", method, path, resp.StatusCode, b)
		}
		return cell{resp.StatusCode, ""}
	}
	var e wire.Error
	if err := json.Unmarshal(b, &e); err != nil {
		t.Errorf("%s %s: status %d, body %q is not an error: %v", method, path, resp.StatusCode, b, err)
		return cell{resp.StatusCode, "?"}
	}
	if e.Message == "" || strings.ContainsAny(e.Message, "\r\n") {
		t.Errorf("%s %s: error message %q is not one line", method, path, e.Message)
	}
	return cell{resp.StatusCode, e.Code}
}
