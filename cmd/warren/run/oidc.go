package run

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/warrennet/warren/cmd/warren/cli"
	"github.com/warrennet/warren/overlay/coord/sso"
	"github.com/warrennet/warren/overlay/wire"
)

// discoveryTimeout bounds finding the identity provider at start.
const discoveryTimeout = 30 * time.Second

// identityProvider reads the client secret and discovers the identity
// provider: single sign-on's relying party, its redirect URL the
// coordinator's public URL + /oidc/callback. Any failure is one line and
// stops the start.
func identityProvider(ctx context.Context, o *cli.OIDCOptions, publicURL string, log *slog.Logger) (*sso.Provider, error) {
	secret, err := readClientSecret(o.ClientSecretFile, log)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, discoveryTimeout)
	defer cancel()
	redirect := publicURL + wire.PathOIDCCallback
	p, err := sso.New(ctx, sso.Config{
		Issuer:         o.Issuer,
		ClientID:       o.ClientID,
		ClientSecret:   secret,
		RedirectURL:    redirect,
		GroupsClaim:    o.GroupsClaim,
		AllowedDomains: o.AllowedDomains,
	})
	if err != nil {
		return nil, fmt.Errorf("single sign-on: %s", strings.Join(strings.Fields(err.Error()), " "))
	}
	log.Info("single sign-on enabled", "issuer", o.Issuer, "client_id", o.ClientID, "redirect_url", redirect,
		"groups_claim", o.GroupsClaim, "allowed_domains", strings.Join(o.AllowedDomains, ","), "revalidate", o.Revalidate)
	return p, nil
}

// maxClientSecret bounds the client secret file.
const maxClientSecret = 4096

// readClientSecret reads the OIDC client secret from path. A file other
// users may read or write is refused (as ssh refuses such a private key);
// one its group may read draws a warning.
func readClientSecret(path string, log *slog.Logger) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("--oidc-client-secret-file %s does not exist", path)
		}
		return "", fmt.Errorf("--oidc-client-secret-file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("--oidc-client-secret-file: %w", err)
	}
	switch mode := fi.Mode(); {
	case !mode.IsRegular():
		return "", fmt.Errorf("--oidc-client-secret-file %s is not a regular file", path)
	case mode.Perm()&0o006 != 0:
		return "", fmt.Errorf("--oidc-client-secret-file %s is open to other users (mode %04o); chmod 600 it", path, mode.Perm())
	case mode.Perm()&0o060 != 0:
		log.Warn("the OIDC client secret file is open to its group; chmod 600 it", "file", path, "mode", fmt.Sprintf("%04o", mode.Perm()))
	}
	b := make([]byte, maxClientSecret+1)
	n, err := f.Read(b)
	if err != nil && n == 0 {
		return "", fmt.Errorf("--oidc-client-secret-file %s: %w", path, err)
	}
	if n > maxClientSecret {
		return "", fmt.Errorf("--oidc-client-secret-file %s is longer than %d bytes", path, maxClientSecret)
	}
	secret := strings.TrimSpace(string(b[:n]))
	if secret == "" || strings.ContainsAny(secret, "\r\n") {
		return "", fmt.Errorf("--oidc-client-secret-file %s must hold the secret on one line", path)
	}
	return secret, nil
}
