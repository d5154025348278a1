package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/crypto/ssh"

	"github.com/warrennet/warren/overlay/ctl"
	"github.com/warrennet/warren/overlay/wire"
)

// defaultSSHKey is the key `warren ssh-cert` certifies unless told.
const defaultSSHKey = "~/.ssh/id_ed25519.pub"

func (a *app) sshCertCommand() *cli.Command {
	return &cli.Command{
		Name:      "ssh-cert",
		Usage:     "get a short-lived SSH certificate for your key from the coordinator, written beside it and renewed while the tunnel is up",
		ArgsUsage: " ",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "key", Value: defaultSSHKey, Usage: "your SSH public key; the certificate goes beside it as KEY-cert.pub"},
			&cli.DurationFlag{Name: "validity", Value: wire.DefaultSSHCertValidity, Usage: "how long each certificate is valid (the coordinator caps it)"},
			jsonFlag,
		},
		Action: func(c *cli.Context) error {
			if err := argCount(c, 0, "[--key FILE.pub] [--validity DURATION] [--json]"); err != nil {
				return err
			}
			if c.Duration("validity") <= 0 {
				return fmt.Errorf("--validity %v is not a positive duration (for example 1h)", c.Duration("validity"))
			}
			req, err := a.sshCertRequest(c.String("key"))
			if err != nil {
				return err
			}
			req.Validity = wire.Duration(c.Duration("validity"))
			cl := ctl.NewClient(a.socket(c))
			defer cl.Close()
			res, err := cl.SSHCert(c.Context, req)
			if err != nil {
				return err
			}
			if c.Bool("json") {
				return a.printJSON(res)
			}
			printSSHCert(a.env.Stdout, res, time.Now())
			return nil
		},
	}
}

// sshCertRequest reads the public key at path (as the user running the
// CLI: the daemon reads none of their files) and names it by its real
// directory.
func (a *app) sshCertRequest(path string) (ctl.SSHCertRequest, error) {
	if rest, ok := strings.CutPrefix(path, "~/"); ok {
		home := a.env.Getenv("HOME")
		if home == "" {
			return ctl.SSHCertRequest{}, fmt.Errorf("cannot expand %s: HOME is not set; give --key with a full path", path)
		}
		path = filepath.Join(home, rest)
	}
	if !strings.HasSuffix(path, ".pub") {
		return ctl.SSHCertRequest{}, fmt.Errorf("%s is not a public key file (give the .pub file, e.g. --key %s)", path, defaultSSHKey)
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return ctl.SSHCertRequest{}, fmt.Errorf("no SSH key at %s: generate one with ssh-keygen -t ed25519", path)
	}
	if err != nil {
		return ctl.SSHCertRequest{}, fmt.Errorf("reading your key: %w", err)
	}
	if _, _, _, rest, err := ssh.ParseAuthorizedKey(b); err != nil || strings.TrimSpace(string(rest)) != "" {
		return ctl.SSHCertRequest{}, fmt.Errorf("%s does not hold one SSH public key", path)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return ctl.SSHCertRequest{}, err
	}
	// The daemon writes only into a real directory: name it by its real
	// path (a link to the user's own directory is theirs to follow).
	dir, err := filepath.EvalSymlinks(filepath.Dir(abs))
	if err != nil {
		return ctl.SSHCertRequest{}, fmt.Errorf("reading your key's directory: %w", err)
	}
	return ctl.SSHCertRequest{PublicKey: strings.TrimSpace(string(b)), KeyPath: filepath.Join(dir, filepath.Base(abs))}, nil
}

// printSSHCert says what certificate was written.
func printSSHCert(w interface{ Write([]byte) (int, error) }, res *ctl.SSHCertResult, now time.Time) {
	fmt.Fprintf(w, "certificate: %s\n", res.Path)
	fmt.Fprintf(w, "key id: %s\n", res.KeyID)
	fmt.Fprintf(w, "principals: %s\n", strings.Join(res.Principals, ", "))
	fmt.Fprintf(w, "valid until: %s (%s); renewed while the tunnel is up\n", res.ValidBefore.UTC().Format(time.RFC3339), until(res.ValidBefore.Sub(now)))
}
