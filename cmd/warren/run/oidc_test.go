package run

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/warrennet/warren/cmd/warren/cli"
)

func TestReadClientSecret(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	var logged strings.Builder
	log := slog.New(slog.NewTextHandler(&logged, nil))
	for _, tt := range []struct {
		path, want, wantErr string
		warns               bool
	}{
		{write("ok", "s3cret\n", 0o600), "s3cret", "", false},
		{write("group", "s3cret", 0o640), "s3cret", "", true},
		{write("world", "s3cret", 0o644), "", "is open to other users (mode 0644); chmod 600 it", false},
		{write("empty", "\n", 0o600), "", "must hold the secret on one line", false},
		{write("lines", "a\nb\n", 0o600), "", "must hold the secret on one line", false},
		{write("long", strings.Repeat("x", maxClientSecret+1), 0o600), "", "is longer than 4096 bytes", false},
		{filepath.Join(dir, "missing"), "", "does not exist", false},
		{dir, "", "is not a regular file", false},
	} {
		logged.Reset()
		got, err := readClientSecret(tt.path, log)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || strings.Contains(err.Error(), "\n") {
				t.Errorf("readClientSecret(%s) = %q, %v; want an error with %q", filepath.Base(tt.path), got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("readClientSecret(%s) = %q, %v; want %q", filepath.Base(tt.path), got, err, tt.want)
		}
		if warned := strings.Contains(logged.String(), "open to its group"); warned != tt.warns {
			t.Errorf("readClientSecret(%s): warned %v, want %v", filepath.Base(tt.path), warned, tt.warns)
		}
	}
}

func TestIdentityProviderFailsInOneLine(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	o := &cli.OIDCOptions{Issuer: "https://127.0.0.1:1", ClientID: "warren", ClientSecretFile: secret, GroupsClaim: "groups", Revalidate: time.Hour}
	_, err := identityProvider(t.Context(), o, "https://coord.example.com:8443", log)
	if err == nil || !strings.HasPrefix(err.Error(), "single sign-on: identity provider https://127.0.0.1:1 unreachable") || strings.Contains(err.Error(), "\n") {
		t.Errorf("identityProvider with nothing at the issuer = %v; want one line saying it is unreachable", err)
	}
	o.ClientSecretFile = filepath.Join(t.TempDir(), "missing")
	if _, err := identityProvider(t.Context(), o, "https://coord.example.com:8443", log); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("identityProvider without a secret file = %v", err)
	}
}
