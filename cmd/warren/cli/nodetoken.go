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
		b, err := os.ReadFile(f)
		if err != nil {
			return "", fmt.Errorf("reading token: %w", err)
		}
		tok := strings.TrimSpace(string(b))
		if tok == "" {
			return "", fmt.Errorf("token file %s is empty", f)
		}
		if fi, err := os.Stat(f); err == nil && fi.Mode().Perm()&0o077 != 0 {
			fmt.Fprintf(a.env.Stderr, "warning: token file %s is readable by other users (chmod 600 %s)\n", f, f)
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
