package run

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"strings"
)

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
