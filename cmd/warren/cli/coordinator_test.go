package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestCoordinatorOIDCFlags(t *testing.T) {
	const core = "--oidc-issuer https://idp.example.com/realms/acme --oidc-client-id warren --oidc-client-secret-file /etc/warren/oidc.secret"
	tests := []struct {
		args    string
		want    *OIDCOptions
		wantErr string
	}{
		{"", nil, ""},
		{core, &OIDCOptions{Issuer: "https://idp.example.com/realms/acme", ClientID: "warren", ClientSecretFile: "/etc/warren/oidc.secret",
			GroupsClaim: "groups", Revalidate: 12 * time.Hour}, ""},
		{core + " --oidc-groups-claim roles --oidc-allowed-domains Example.com,,b.org --oidc-revalidate 1d", &OIDCOptions{
			Issuer: "https://idp.example.com/realms/acme", ClientID: "warren", ClientSecretFile: "/etc/warren/oidc.secret",
			GroupsClaim: "roles", AllowedDomains: []string{"example.com", "b.org"}, Revalidate: 24 * time.Hour}, ""},
		{"--oidc-issuer https://idp.example.com", nil, "--oidc-issuer needs --oidc-client-id and --oidc-client-secret-file too"},
		{"--oidc-client-id w --oidc-client-secret-file f", nil, "--oidc-client-id and --oidc-client-secret-file need --oidc-issuer too"},
		{"--oidc-allowed-domains example.com", nil, "--oidc-allowed-domains needs --oidc-issuer, --oidc-client-id and --oidc-client-secret-file"},
		{"--oidc-revalidate 1h", nil, "--oidc-revalidate needs --oidc-issuer, --oidc-client-id and --oidc-client-secret-file"},
		{strings.Replace(core, "https://", "http://", 1), nil, `--oidc-issuer "http://idp.example.com/realms/acme" is not an https:// URL`},
		{core + " --oidc-revalidate 30s", nil, "--oidc-revalidate 30s is shorter than 1m0s"},
		{core + " --oidc-revalidate never", nil, `--oidc-revalidate "never" is not a positive duration (for example 12h or 1d)`},
		{core + " --oidc-allowed-domains alice@example.com", nil, `--oidc-allowed-domains: "alice@example.com" is not a domain (for example example.com)`},
		{core + " --oidc-groups-claim=", nil, "--oidc-groups-claim is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.args, func(t *testing.T) {
			var got *CoordinatorOptions
			var out bytes.Buffer
			app := New(Env{Stdout: &out, Stderr: &out}, Roles{Coordinator: func(_ context.Context, o CoordinatorOptions) error {
				got = &o
				return nil
			}})
			args := append([]string{"warren", "coordinator", "--data", t.TempDir()}, strings.Fields(tt.args)...)
			err := app.RunContext(context.Background(), Permute(app, args))
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Errorf("error:\n got %v\nwant %s", err, tt.wantErr)
				}
				if got != nil {
					t.Errorf("the coordinator started anyway")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got.OIDC); diff != "" {
				t.Errorf("OIDC options (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCoordinatorHostSuffixFlag(t *testing.T) {
	for _, tt := range []struct{ args, want, wantErr string }{
		{"", "warren.internal", ""},
		{"--host-suffix Corp.LAN.", "corp.lan", ""},
		{"--host-suffix bad_suffix", "", `--host-suffix: domain name "bad_suffix" may hold only letters, digits and inner hyphens in each label`},
		{"--host-suffix=", "", `--host-suffix: "" is not a domain name (for example corp.example)`},
	} {
		t.Run(tt.args, func(t *testing.T) {
			var got *CoordinatorOptions
			var out bytes.Buffer
			app := New(Env{Stdout: &out, Stderr: &out}, Roles{Coordinator: func(_ context.Context, o CoordinatorOptions) error {
				got = &o
				return nil
			}})
			args := append([]string{"warren", "coordinator", "--data", t.TempDir()}, strings.Fields(tt.args)...)
			err := app.RunContext(context.Background(), Permute(app, args))
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr || got != nil {
					t.Errorf("error %v (started: %v), want %s", err, got != nil, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.HostSuffix != tt.want {
				t.Errorf("host suffix %q, want %q", got.HostSuffix, tt.want)
			}
		})
	}
}
