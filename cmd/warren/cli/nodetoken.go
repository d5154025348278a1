package cli

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/urfave/cli/v2"
)

// EnvToken holds the enrollment token of `warren up` and `warren connector`
// when neither --token nor --token-file is given.
const EnvToken = "WARREN_TOKEN"

// tokenFlags are the ways `up` and `connector` take an enrollment token:
// argv (visible to every local user in ps), a file, or the environment.
func tokenFlags(role string) []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "token-file", Usage: role + " token read from FILE (mode 0600 is enough; a trailing newline is ignored), needed the first time only"},
		&cli.StringFlag{Name: "token", Usage: role + " token on the command line (other local users can read it in ps: prefer --token-file or " + EnvToken + ")"},
	}
}

// nodeToken returns the enrollment token given by exactly one of
// --token-file, $WARREN_TOKEN and --token, or "" when none is. Two at once
// is an error rather than a silent precedence: one of them is stale.
func (a *app) nodeToken(c *cli.Context) (string, error) {
	type source struct{ name, value string }
	var given []source
	if f := c.String("token-file"); f != "" {
		tok, err := a.readSecretFile(f, "token")
		if err != nil {
			return "", err
		}
		given = append(given, source{"--token-file", tok})
	}
	if v := strings.TrimSpace(a.env.Getenv(EnvToken)); v != "" {
		given = append(given, source{EnvToken, v})
	}
	if v := strings.TrimSpace(c.String("token")); v != "" {
		given = append(given, source{"--token", v})
	}
	switch len(given) {
	case 0:
		return "", nil
	case 1:
		return given[0].value, nil
	}
	var names []string
	for _, g := range given {
		names = append(names, g.name)
	}
	return "", errors.New("the token is given twice (" + strings.Join(names, " and ") + "): give it one way")
}

// readSecretFile reads the secret (a token, a password) that the file at
// path holds, without surrounding whitespace, and warns when other users
// can read the file.
func (a *app) readSecretFile(path, what string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", what, err)
	}
	v := strings.TrimSpace(string(b))
	if v == "" {
		return "", fmt.Errorf("%s file %s is empty", what, path)
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		fmt.Fprintf(a.env.Stderr, "warning: %s file %s is readable by other users (chmod 600 %s)\n", what, path, path)
	}
	return v, nil
}
