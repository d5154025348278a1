package netlab

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// Account is a UNIX account that exists only for the processes the lab
// starts in one namespace (AddAccounts): the host's user database never
// holds it.
type Account struct {
	Name     string
	UID, GID int
	// Home is the account's home directory, mode 0700, owned by it.
	Home string
}

// The range AddAccounts takes UIDs (and GIDs) from, skipping any the
// host's /etc/passwd or /etc/group uses. Files the accounts own live only
// under the lab's directories.
const (
	firstAccountID = 50000
	lastAccountID  = 59999
)

// AddAccounts makes UNIX accounts named names exist for the processes
// the lab starts in role's namespace from then on, so that sshd can log
// them in and ssh, ssh-keygen and warren can run as them, without
// creating a user on the host. It writes /etc/netns/NS/passwd and group:
// the host's files (or what an earlier call wrote), without any entry of
// the same name, plus one line per account (shell /bin/sh, no password,
// a group of its own). `ip netns exec` bind-mounts them over /etc/passwd
// and /etc/group for what it starts, and Close removes them; the host's
// files are only read. A process already running in the namespace keeps
// the old view, so call it before starting what must see the accounts.
//
// Each home is a directory of its own, mode 0700 and owned by the
// account, in a directory under os.TempDir that the lab makes (0755, so
// the accounts reach their homes: a test's TempDir is 0700) and Close
// removes.
func (l *Lab) AddAccounts(role string, names ...string) ([]Account, error) {
	etc := filepath.Join(netnsEtc, l.NS(role))
	base := func(name string) ([]byte, error) {
		b, err := os.ReadFile(filepath.Join(etc, name))
		if errors.Is(err, os.ErrNotExist) {
			b, err = os.ReadFile(filepath.Join("/etc", name))
		}
		return b, err
	}
	passwd, err := base("passwd")
	if err != nil {
		return nil, err
	}
	group, err := base("group")
	if err != nil {
		return nil, err
	}
	used := map[int]bool{}
	for _, f := range [][]byte{passwd, group} {
		for _, e := range entries(f) {
			if len(e) > 2 {
				if id, err := strconv.Atoi(e[2]); err == nil {
					used[id] = true
				}
			}
		}
	}
	// The host's own files too: an id the namespace's copy dropped (a
	// same-named entry) may still own files on the host.
	for _, f := range []string{"/etc/passwd", "/etc/group"} {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		for _, e := range entries(b) {
			if len(e) > 2 {
				if id, err := strconv.Atoi(e[2]); err == nil {
					used[id] = true
				}
			}
		}
	}
	dir, err := l.sharedDir(role + "-home")
	if err != nil {
		return nil, err
	}
	var accts []Account
	id := firstAccountID
	for _, name := range names {
		if !validAccountName(name) {
			return nil, fmt.Errorf("account name %q: want lowercase letters, digits, '-' and '_', starting with a letter", name)
		}
		for id <= lastAccountID && used[id] {
			id++
		}
		if id > lastAccountID {
			return nil, fmt.Errorf("no free id in %d-%d for account %s", firstAccountID, lastAccountID, name)
		}
		used[id] = true
		a := Account{Name: name, UID: id, GID: id, Home: filepath.Join(dir, name)}
		if err := os.Mkdir(a.Home, 0o700); err != nil {
			return nil, err
		}
		if err := os.Chown(a.Home, a.UID, a.GID); err != nil {
			return nil, err
		}
		passwd = append(without(passwd, name), fmt.Sprintf("%s:x:%d:%d:Warren e2e:%s:/bin/sh\n", name, a.UID, a.GID, a.Home)...)
		group = append(without(group, name), fmt.Sprintf("%s:x:%d:\n", name, a.GID)...)
		accts = append(accts, a)
	}
	l.mu.Lock()
	l.etcDirs = append(l.etcDirs, etc)
	l.mu.Unlock()
	if err := os.MkdirAll(etc, 0o755); err != nil {
		return nil, err
	}
	for _, f := range []struct {
		name string
		b    []byte
	}{{"passwd", passwd}, {"group", group}} {
		if err := os.WriteFile(filepath.Join(etc, f.name), f.b, 0o644); err != nil {
			return nil, err
		}
	}
	return accts, nil
}

func validAccountName(s string) bool {
	if s == "" || len(s) > 32 || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// entries splits a passwd or group file into its colon-separated fields.
func entries(b []byte) [][]string {
	var out [][]string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if line := sc.Text(); line != "" && !strings.HasPrefix(line, "#") {
			out = append(out, strings.Split(line, ":"))
		}
	}
	return out
}

// without returns a passwd or group file without the entry named name,
// ending with a newline.
func without(b []byte, name string) []byte {
	var out []byte
	for _, line := range strings.SplitAfter(string(b), "\n") {
		if line == "" || strings.HasPrefix(line, name+":") {
			continue
		}
		out = append(out, line...)
		if !strings.HasSuffix(line, "\n") {
			out = append(out, '\n')
		}
	}
	return out
}

// CommandAs returns a command that runs in the role's namespace as the
// account (its uid and gid, no supplementary groups), with an environment
// of only HOME, USER, LOGNAME and PATH, plus env ("KEY=VALUE").
func (l *Lab) CommandAs(ctx context.Context, role string, a Account, env []string, name string, args ...string) *exec.Cmd {
	argv := []string{"--reuid=" + strconv.Itoa(a.UID), "--regid=" + strconv.Itoa(a.GID), "--clear-groups", "--",
		"env", "-i", "HOME=" + a.Home, "USER=" + a.Name, "LOGNAME=" + a.Name, "PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"}
	argv = append(append(append(argv, env...), name), args...)
	return l.Command(ctx, role, "setpriv", argv...)
}

// StartAs is Start with the command running as the account (CommandAs),
// with env ("KEY=VALUE") added to its environment.
func (l *Lab) StartAs(role string, a Account, env []string, name string, args ...string) (*Proc, error) {
	return l.start(l.CommandAs(context.Background(), role, a, env, name, args...), role, name+" (as "+a.Name+")")
}

// OutputAs is Output with the command running as the account (CommandAs).
func (l *Lab) OutputAs(ctx context.Context, role string, a Account, env []string, name string, args ...string) (string, error) {
	return output(l.CommandAs(ctx, role, a, env, name, args...), role, name, args)
}

// output runs cmd and returns its stdout, or an error naming the command
// (name and args) with its stderr.
func output(cmd *exec.Cmd, role, name string, args []string) (string, error) {
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s in %s: %w: %s", name, strings.Join(args, " "), role, err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}
