package policy

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/warrennet/warren/overlay/wire"
)

// TestProviderGroups: group:NAME takes in the members the document lists
// and those single sign-on puts in the group; a group nobody has is
// refused, or a warning once single sign-on is configured.
func TestProviderGroups(t *testing.T) {
	const alice, erin, frank, gina = "alice@example.com", "erin@example.com", "frank@example.com", "gina@example.com"
	sso := map[string][]string{
		"eng":         {frank},       // also a group of the document
		"sso-admins":  {erin, gina},  // only from single sign-on
		"sso-nothing": {},            // present, but nobody is in it
		"empty":       {gina},        // fills a group the document leaves empty
		"Eng Team":    {erin, frank}, // a provider's name need not be a document's
	}
	env := func(groups map[string][]string, ssoOn bool) Env {
		return Env{Users: testEnv.Users, Hosts: testHosts, Routes: testRoutes, Groups: groups, SSO: ssoOn}
	}
	tests := []struct {
		name     string
		from     string
		env      Env
		opt      Options
		members  []string // who the rule lets through, of alice, erin, frank, gina
		warnings []string
		err      string
	}{
		{name: "document and provider members", from: "group:eng", env: env(sso, true), opt: Options{Strict: true}, members: []string{alice, frank}},
		{name: "provider members only", from: "group:sso-admins", env: env(sso, true), opt: Options{Strict: true}, members: []string{erin, gina}},
		{name: "provider groups without sso on", from: "group:sso-admins", env: env(sso, false), opt: Options{Strict: true}, members: []string{erin, gina}},
		{name: "any provider group name", from: "group:Eng Team", env: env(sso, true), opt: Options{Strict: true}, members: []string{erin, frank}},
		{name: "an empty document group filled by sso", from: "group:empty", env: env(sso, true), opt: Options{Strict: true}, members: []string{gina}},
		{name: "an empty document group", from: "group:empty", env: env(nil, true), opt: Options{Strict: true},
			warnings: []string{"line 3: group:empty has no members: it lets no one through"}},
		{name: "unknown group, no sso", from: "group:nobody", env: env(sso, false), opt: Options{Strict: true},
			err: `line 3: unknown group "nobody" (the document's groups define it)`},
		{name: "unknown group, sso", from: "group:nobody", env: env(sso, true), opt: Options{Strict: true},
			warnings: []string{"line 3: no user is in group:nobody yet"}},
		{name: "a provider group nobody is in", from: "group:sso-nothing", env: env(sso, true), opt: Options{Strict: true},
			warnings: []string{"line 3: no user is in group:sso-nothing yet"}},
		{name: "unknown group, a stored document", from: "group:nobody", env: env(nil, false),
			warnings: []string{`line 3: unknown group "nobody": it lets no one through`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text := rules(`{"from": ["` + tt.from + `"], "to": ["db:5432"]}`) // line 3
			text = text[:len(text)-1] + `, "ssh": [{"from": ["` + tt.from + `"], "to": ["db"], "as": ["deploy"]}]}`
			c, warnings, err := Compile(mustParse(t, text), tt.env, tt.opt)
			if tt.err != "" {
				if err == nil || err.Error() != tt.err {
					t.Fatalf("Compile error = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Compile: %v", err)
			}
			// The rule (line 3) and the ssh rule (line 4) each warn.
			var want []string
			for _, w := range tt.warnings {
				want = append(want, w, "line 4"+strings.TrimPrefix(w, "line 3"))
			}
			if diff := cmp.Diff(want, warnings); diff != "" {
				t.Errorf("warnings (-want +got):\n%s", diff)
			}
			var got, gotSSH []string
			for _, u := range []string{alice, erin, frank, gina} {
				if c.Decide(u, addr("192.168.1.20"), 5432, wire.ProtoTCP).Allow {
					got = append(got, u)
				}
				if ps := c.SSHPrincipals(u); cmp.Equal(ps, []string{"deploy"}) {
					gotSSH = append(gotSSH, u)
				}
			}
			if diff := cmp.Diff(tt.members, got); diff != "" {
				t.Errorf("allowed users (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.members, gotSSH); diff != "" {
				t.Errorf("users with principals (-want +got):\n%s", diff)
			}
		})
	}
}

// TestProviderGroupUsersAreKnown: a user single sign-on puts in a group
// may be named by user: and by tests under Strict.
func TestProviderGroupUsersAreKnown(t *testing.T) {
	text := `{"rules": [{"from": ["user:erin@example.com"], "to": ["db:*"]}],
"tests": [{"user": "erin@example.com", "allow": ["db:22"]}]}`
	env := testEnv
	if _, _, err := Compile(mustParse(t, text), env, Options{Strict: true}); err == nil {
		t.Fatalf("strict Compile accepts an unknown user")
	}
	env.Groups = map[string][]string{"anything": {"erin@example.com"}}
	if _, _, err := Compile(mustParse(t, text), env, Options{Strict: true}); err != nil {
		t.Errorf("strict Compile with a user of a provider group: %v", err)
	}
}
