package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/warrennet/warren/overlay/coordclient"
	"github.com/warrennet/warren/overlay/wire"
)

// AdminTokenFile is the name of the admin credential in the coordinator's
// data directory.
const AdminTokenFile = "admin.token"

// admin returns a client of the coordinator's admin API, authenticated by
// the first credential found: --admin-token-file, WARREN_ADMIN_TOKEN, or
// the admin.token in --data.
func (a *app) admin(c *cli.Context) (*coordclient.Admin, error) {
	var raw, from string
	switch {
	case c.String("admin-token-file") != "":
		from = c.String("admin-token-file")
		b, err := os.ReadFile(from)
		if err != nil {
			return nil, fmt.Errorf("reading admin token: %w", err)
		}
		raw = string(b)
	case a.env.Getenv(EnvAdminToken) != "":
		from, raw = EnvAdminToken, a.env.Getenv(EnvAdminToken)
	case c.String("data") != "":
		from = filepath.Join(c.String("data"), AdminTokenFile)
		b, err := os.ReadFile(from)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("no admin token at %s: is %s the coordinator's --data directory, and has it started once?", from, c.String("data"))
		}
		if err != nil {
			return nil, fmt.Errorf("reading admin token: %w", err)
		}
		raw = string(b)
	default:
		return nil, errors.New("no admin credential: pass --admin-token-file FILE, set " + EnvAdminToken + ", or on the coordinator host pass --data DIR")
	}
	tok, err := wire.ParseToken(strings.TrimSpace(raw))
	if err != nil {
		return nil, fmt.Errorf("admin token from %s: %w", from, err)
	}
	return coordclient.NewAdmin(tok)
}

// withAdmin calls f with an admin client, closed afterwards.
func (a *app) withAdmin(c *cli.Context, f func(*coordclient.Admin) error) error {
	admin, err := a.admin(c)
	if err != nil {
		return err
	}
	defer admin.Close()
	return f(admin)
}

// printJSON writes v as indented JSON.
func (a *app) printJSON(v any) error {
	enc := json.NewEncoder(a.jsonOut)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// jsonFlag is the --json flag of listing commands.
var jsonFlag = &cli.BoolFlag{Name: "json", Usage: "print JSON for programs instead of a table"}
