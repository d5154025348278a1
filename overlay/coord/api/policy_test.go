package api_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/warrennet/warren/overlay/coord/api"
	"github.com/warrennet/warren/overlay/wire"
	"github.com/warrennet/warren/test/coordtest"
)

const apiPolicy = `{
  "groups": {"eng": ["alice@example.com"]},
  "rules": [
    {"from": ["group:eng"], "to": ["192.168.0.0/24:22", "web:443"]}, // ssh and the intranet
  ],
}`

// TestPolicyAndHostsAPI walks the access-policy and host endpoints in
// order, checking each answer's status and body.
func TestPolicyAndHostsAPI(t *testing.T) {
	s := coordtest.Start(t, coordtest.Options{})
	alice := s.Token(t, wire.CreateTokenRequest{Role: wire.RoleClient, Name: "alice", User: "alice@example.com", Reusable: true})
	h := api.New(s.Coord, nil)
	admin := s.Admin.Secret

	why := func(user, dest string) string {
		return wire.PathPolicyWhy + "?" + url.Values{"user": {user}, "dest": {dest}}.Encode()
	}
	body := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	steps := []struct {
		name, method, path, body, secret string
		status                           int
		want                             []string // substrings of the answer
	}{
		{"policy without credential", "GET", wire.PathPolicy, "", "", 401, []string{`"code":"unauthorized"`}},
		{"policy with a wrong secret", "GET", wire.PathPolicy, "", "nope", 401, []string{`"code":"unauthorized"`}},
		{"policy with a client token", "GET", wire.PathPolicy, "", alice.Secret, 401, []string{`"code":"unauthorized"`}},
		{"why without credential", "GET", why("alice@example.com", "192.168.0.10:22"), "", "", 401, nil},
		{"hosts without credential", "GET", wire.PathHosts, "", "", 401, nil},
		{"set without credential", "PUT", wire.PathPolicy, body(wire.SetPolicyRequest{Document: apiPolicy}), "", 401, nil},
		{"reset without credential", "POST", wire.PathPolicyReset, "", "", 401, nil},

		{"allow-all", "GET", wire.PathPolicy, "", admin, 200, []string{`"mode":"allow-all"`, `every client reaches every routed destination`}},
		{"why under allow-all", "GET", why("alice@example.com", "192.168.0.10:8080"), "", admin, 200, []string{`"allow":true`}},
		{"no hosts", "GET", wire.PathHosts, "", admin, 200, []string{`[]`}},
		{"add host", "POST", wire.PathHosts, body(wire.AddHostRequest{Name: "web", Address: "192.168.0.10", Comment: "intranet"}), admin, 201,
			[]string{`"name":"web"`, `"address":"192.168.0.10"`, `"comment":"intranet"`}},
		{"add host again", "POST", wire.PathHosts, body(wire.AddHostRequest{Name: "web", Address: "192.168.0.11"}), admin, 409, []string{`"code":"conflict"`}},
		{"add bad host", "POST", wire.PathHosts, body(wire.AddHostRequest{Name: "db", Address: "nope"}), admin, 400, []string{`"code":"invalid"`}},
		{"add host, unknown field", "POST", wire.PathHosts, `{"name":"db","address":"10.0.0.1","ip":"x"}`, admin, 400, []string{`unknown field`}},
		{"list hosts", "GET", wire.PathHosts, "", admin, 200, []string{`"name":"web"`}},

		{"refused document", "PUT", wire.PathPolicy, body(wire.SetPolicyRequest{Document: "{\n  \"rules\": [\n    {\"from\": [\"group:ops\"], \"to\": [\"10.0.0.0/8:22\"]}\n  ]\n}"}), admin, 400,
			[]string{`"code":"invalid"`, `line 3: `}},
		{"still allow-all", "GET", wire.PathPolicy, "", admin, 200, []string{`"mode":"allow-all"`}},
		{"dry run", "PUT", wire.PathPolicy, body(wire.SetPolicyRequest{Document: apiPolicy, DryRun: true}), admin, 200,
			[]string{`"applied":false`, `"mode":"enforced"`, `"user":"alice@example.com"`, `"192.168.0.10:443/tcp"`}},
		{"still allow-all after a dry run", "GET", wire.PathPolicy, "", admin, 200, []string{`"mode":"allow-all"`}},
		{"set", "PUT", wire.PathPolicy, body(wire.SetPolicyRequest{Document: apiPolicy}), admin, 200, []string{`"applied":true`, `"mode":"enforced"`}},
		{"get", "GET", wire.PathPolicy, "", admin, 200, []string{`"mode":"enforced"`, `// ssh and the intranet`, `"set_at":`}},
		{"why allowed", "GET", why("alice@example.com", "web:443"), "", admin, 200,
			[]string{`"allow":true`, `"rule":1`, `allowed by rule 1 (line 4)`}},
		{"why denied", "GET", why("alice@example.com", "192.168.0.10:8080"), "", admin, 200,
			[]string{`"allow":false`, `denied by policy: no rule lets alice@example.com reach 192.168.0.10:8080/tcp`}},
		{"why, bad user", "GET", why("alice", "192.168.0.10:22"), "", admin, 400, []string{`"code":"invalid"`}},
		{"why, unknown user", "GET", why("carol@example.com", "192.168.0.10:22"), "", admin, 400, []string{`unknown user`}},
		{"why, bad destination", "GET", why("alice@example.com", "192.168.0.10"), "", admin, 400, []string{`"code":"invalid"`}},
		{"why, no question", "GET", wire.PathPolicyWhy, "", admin, 400, []string{`"code":"invalid"`}},
		{"remove a host the policy names", "DELETE", wire.PathHosts + "/web", "", admin, 409, []string{`the access policy names host \"web\" (line 4)`}},
		{"remove an unknown host", "DELETE", wire.PathHosts + "/db", "", admin, 404, []string{`"code":"not_found"`}},
		{"export", "GET", wire.PathExport, "", admin, 200, []string{`"hosts":[{"name":"web"`, `"policy":"{`}},
		{"reset", "POST", wire.PathPolicyReset, "", admin, 200, []string{`"applied":true`, `"mode":"allow-all"`, `"lost":["192.168.0.0/24:22/tcp"`}},
		{"remove the host", "DELETE", wire.PathHosts + "/web", "", admin, 204, nil},
	}
	for _, st := range steps {
		req := httptest.NewRequest(st.method, st.path, strings.NewReader(st.body))
		if st.secret != "" {
			req.Header.Set("Authorization", "Bearer "+st.secret)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		got := rec.Body.String()
		if rec.Code != st.status {
			t.Errorf("%s: %s %s = %d %s, want %d", st.name, st.method, st.path, rec.Code, got, st.status)
			continue
		}
		for _, w := range st.want {
			if !strings.Contains(got, w) {
				t.Errorf("%s: answer %s lacks %s", st.name, got, w)
			}
		}
		if st.status != http.StatusNoContent && rec.Header().Get("Content-Type") != "application/json" {
			t.Errorf("%s: Content-Type %q", st.name, rec.Header().Get("Content-Type"))
		}
	}
}
