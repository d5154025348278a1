package service

import (
	"bufio"
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/warrennet/warren/dist"
)

// Each file names the binary exactly once (Render refuses otherwise) and
// carries the marker uninstall looks for.
func TestDistFiles(t *testing.T) {
	for _, name := range []string{dist.SystemdSystem, dist.SystemdUser, dist.LaunchdDaemon, dist.LaunchdUserspace} {
		b, err := dist.Files.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(b, []byte(dist.Marker)) {
			t.Errorf("%s lacks the marker %q", name, dist.Marker)
		}
		got, err := Render(name, dist.Executable)
		if err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if !bytes.Equal(got, b) {
			t.Errorf("%s rendered for %s is not the file itself", name, dist.Executable)
		}
	}
}

// unit is a unit file's settings: section → key → values in order.
type unit map[string]map[string][]string

func parseUnit(t *testing.T, b []byte) unit {
	t.Helper()
	u := unit{}
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[' && line[len(line)-1] == ']':
			section = line[1 : len(line)-1]
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("line %d: %q is not KEY=VALUE in a section", n, line)
			}
			u[section][k] = append(u[section][k], v)
		}
	}
	return u
}

// The security decisions of docs and units, one by one: a unit that
// loses one fails here even without systemd-analyze.
func TestUnitHardening(t *testing.T) {
	common := map[string]string{
		"Type":                    "exec",
		"Restart":                 "on-failure",
		"UMask":                   "0077",
		"NoNewPrivileges":         "yes",
		"RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6 AF_NETLINK",
		"RestrictNamespaces":      "yes",
		"RestrictRealtime":        "yes",
		"RestrictSUIDSGID":        "yes",
		"LockPersonality":         "yes",
		"MemoryDenyWriteExecute":  "yes",
		"SystemCallArchitectures": "native",
		"SystemCallFilter":        "@system-service",
		"SystemCallErrorNumber":   "EPERM",
	}
	tests := []struct {
		name    string
		file    string
		exec    string
		want    map[string]string
		absent  []string
		install string
	}{
		{
			name: "system", file: dist.SystemdSystem, exec: exe + " daemon", install: "multi-user.target",
			want: map[string]string{
				// TUN, addresses, routes; ssh-cert's write into the user's
				// directory and the hand-over of the file (see the unit).
				"CapabilityBoundingSet": "CAP_NET_ADMIN CAP_CHOWN CAP_FOWNER CAP_DAC_OVERRIDE",
				"ProtectSystem":         "strict",
				"ProtectHome":           "no",
				"ReadWritePaths":        "-/home -/root",
				"StateDirectory":        "warren",
				"StateDirectoryMode":    "0700",
				"RuntimeDirectory":      "warren",
				"RuntimeDirectoryMode":  "0755",
				"PrivateTmp":            "yes",
				"DevicePolicy":          "closed",
				"DeviceAllow":           "/dev/net/tun rw",
				"ProtectKernelTunables": "yes",
				"ProtectKernelModules":  "yes",
				"ProtectKernelLogs":     "yes",
				"ProtectControlGroups":  "yes",
				"ProtectClock":          "yes",
				"ProtectHostname":       "yes",
				"ProtectProc":           "invisible",
			},
			// Root with a bounded set needs no ambient capabilities.
			absent: []string{"User", "AmbientCapabilities", "PrivateDevices", "PrivateNetwork"},
		},
		{
			name: "user", file: dist.SystemdUser, exec: exe + " daemon --userspace", install: "default.target",
			// See the unit: no mount namespaces, no capability settings.
			absent: []string{"User", "CapabilityBoundingSet", "AmbientCapabilities", "ProtectSystem", "PrivateTmp", "ProtectHome", "DeviceAllow"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := Render(tt.file, exe)
			if err != nil {
				t.Fatal(err)
			}
			u := parseUnit(t, b)
			s := u["Service"]
			if got := s["ExecStart"]; len(got) != 1 || got[0] != tt.exec {
				t.Errorf("ExecStart=%q, want %q", got, tt.exec)
			}
			for _, want := range []map[string]string{common, tt.want} {
				for k, v := range want {
					if got := s[k]; len(got) != 1 || got[0] != v {
						t.Errorf("%s=%q, want %q", k, got, v)
					}
				}
			}
			for _, k := range tt.absent {
				if got, ok := s[k]; ok {
					t.Errorf("%s=%q is set, want it absent", k, got)
				}
			}
			if got := u["Install"]["WantedBy"]; len(got) != 1 || got[0] != tt.install {
				t.Errorf("WantedBy=%q, want %s", got, tt.install)
			}
		})
	}
}

// TestUnitsVerify runs systemd's own checks on both units as install
// writes them, naming a binary that exists.
func TestUnitsVerify(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed (make deps installs the systemd package): the units are not verified")
	}
	bin, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		file string
		user bool
	}{{dist.SystemdSystem, false}, {dist.SystemdUser, true}} {
		t.Run(tt.file, func(t *testing.T) {
			b, err := Render(tt.file, bin)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			path := filepath.Join(dir, "warren.service")
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
			args := []string{"verify", path}
			env := os.Environ()
			if tt.user {
				args = append([]string{"--user"}, args...)
				rt := filepath.Join(dir, "runtime")
				if err := os.Mkdir(rt, 0o700); err != nil {
					t.Fatal(err)
				}
				env = append(env, "XDG_RUNTIME_DIR="+rt, "HOME="+dir)
			}
			cmd := exec.Command(sa, args...)
			cmd.Env = env
			// Warnings (an unknown key, a bad value) leave the exit status
			// at 0: any output fails the test.
			if out, err := cmd.CombinedOutput(); err != nil || len(out) > 0 {
				t.Errorf("systemd-analyze %s: %v\n%s", strings.Join(args, " "), err, out)
			}
			if tt.user {
				return
			}
			// The system unit's exposure, as systemd rates its sandbox
			// (0 best, 10 worst): 2.9 today. Losing the capability bound
			// alone makes it 4.4.
			args = []string{"security", "--offline=yes", "--threshold=35", path}
			out, err := exec.Command(sa, args...).CombinedOutput()
			if bytes.Contains(out, []byte("unrecognized option")) {
				t.Skipf("this systemd-analyze (before systemd 250) cannot rate a unit file: %s", firstLine(out))
			}
			if err != nil {
				t.Errorf("systemd-analyze %s: %v: exposure above 3.5:\n%s", strings.Join(args, " "), err, out)
			}
		})
	}
}

// TestPlists parses each property list as launchd would read it, and
// checks what it runs.
func TestPlists(t *testing.T) {
	for _, tt := range []struct {
		file, label string
		args        []any
	}{
		{dist.LaunchdDaemon, "net.warren.daemon", []any{exe, "daemon"}},
		{dist.LaunchdUserspace, "net.warren.userspace", []any{exe, "daemon", "--userspace"}},
	} {
		t.Run(tt.file, func(t *testing.T) {
			b, err := Render(tt.file, exe)
			if err != nil {
				t.Fatal(err)
			}
			v, err := parsePlist(b)
			if err != nil {
				t.Fatalf("not a property list: %v", err)
			}
			d, ok := v.(map[string]any)
			if !ok {
				t.Fatalf("the top value is %T, want a dict", v)
			}
			known := map[string]bool{"Label": true, "ProgramArguments": true, "RunAtLoad": true, "KeepAlive": true,
				"ThrottleInterval": true, "Umask": true, "StandardErrorPath": true, "ProcessType": true}
			for k := range d {
				if !known[k] {
					t.Errorf("key %s is not one this test knows from launchd.plist(5)", k)
				}
			}
			if d["Label"] != tt.label || (launchd{}).name(Options{Userspace: tt.label == "net.warren.userspace"}) != tt.label {
				t.Errorf("Label %v, want %s (the file's name)", d["Label"], tt.label)
			}
			if diff := cmp.Diff(tt.args, d["ProgramArguments"]); diff != "" {
				t.Errorf("ProgramArguments (-want +got):\n%s", diff)
			}
			if d["RunAtLoad"] != true {
				t.Errorf("RunAtLoad %v, want true", d["RunAtLoad"])
			}
			if diff := cmp.Diff(map[string]any{"SuccessfulExit": false}, d["KeepAlive"]); diff != "" {
				t.Errorf("KeepAlive (restart on failure) (-want +got):\n%s", diff)
			}
			if d["Umask"] != int64(0o077) {
				t.Errorf("Umask %v, want 63 (0077)", d["Umask"])
			}
			if plutil, err := exec.LookPath("plutil"); err == nil {
				path := filepath.Join(t.TempDir(), "x.plist")
				if err := os.WriteFile(path, b, 0o644); err != nil {
					t.Fatal(err)
				}
				if out, err := exec.Command(plutil, "-lint", path).CombinedOutput(); err != nil {
					t.Errorf("plutil -lint: %v\n%s", err, out)
				}
			}
		})
	}
}

// parsePlist decodes an XML property list (Apple's DTD, version 1.0) into
// map[string]any, []any, string, int64, float64 and bool.
func parsePlist(b []byte) (any, error) {
	d := xml.NewDecoder(bytes.NewReader(b))
	d.Strict = true
	var doctype bool
	for {
		tok, err := d.Token()
		if err != nil {
			return nil, err
		}
		switch tok := tok.(type) {
		case xml.Directive:
			doctype = bytes.Contains(tok, []byte(`DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd"`))
		case xml.StartElement:
			if !doctype {
				return nil, errors.New("no plist DOCTYPE before the root element")
			}
			if tok.Name.Local != "plist" || len(tok.Attr) != 1 || tok.Attr[0].Name.Local != "version" || tok.Attr[0].Value != "1.0" {
				return nil, fmt.Errorf("root element <%s %v>, want <plist version=\"1.0\">", tok.Name.Local, tok.Attr)
			}
			v, err := plistValue(d, nil)
			if err != nil {
				return nil, err
			}
			if end, err := nextElement(d); err != nil || end.(xml.EndElement).Name.Local != "plist" {
				return nil, fmt.Errorf("more than one value in <plist> (%v)", err)
			}
			for {
				if _, err := d.Token(); errors.Is(err, io.EOF) {
					return v, nil
				} else if err != nil {
					return nil, err
				}
			}
		}
	}
}

// nextElement skips white space and comments to the next start or end.
func nextElement(d *xml.Decoder) (xml.Token, error) {
	for {
		tok, err := d.Token()
		if err != nil {
			return nil, err
		}
		switch tok := tok.(type) {
		case xml.StartElement, xml.EndElement:
			return xml.CopyToken(tok), nil
		case xml.CharData:
			if len(bytes.TrimSpace(tok)) > 0 {
				return nil, fmt.Errorf("text %q between elements", tok)
			}
		}
	}
}

// plistValue reads one value; start is its element when already read.
func plistValue(d *xml.Decoder, start *xml.StartElement) (any, error) {
	if start == nil {
		tok, err := nextElement(d)
		if err != nil {
			return nil, err
		}
		se, ok := tok.(xml.StartElement)
		if !ok {
			return nil, fmt.Errorf("</%s> where a value belongs", tok.(xml.EndElement).Name.Local)
		}
		start = &se
	}
	switch start.Name.Local {
	case "dict":
		m := map[string]any{}
		for {
			tok, err := nextElement(d)
			if err != nil {
				return nil, err
			}
			if _, ok := tok.(xml.EndElement); ok {
				return m, nil
			}
			se := tok.(xml.StartElement)
			if se.Name.Local != "key" {
				return nil, fmt.Errorf("<%s> where a <key> belongs", se.Name.Local)
			}
			var k string
			if err := d.DecodeElement(&k, &se); err != nil {
				return nil, err
			}
			if _, dup := m[k]; dup {
				return nil, fmt.Errorf("key %s twice", k)
			}
			if m[k], err = plistValue(d, nil); err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
		}
	case "array":
		a := []any{}
		for {
			tok, err := nextElement(d)
			if err != nil {
				return nil, err
			}
			if _, ok := tok.(xml.EndElement); ok {
				return a, nil
			}
			se := tok.(xml.StartElement)
			v, err := plistValue(d, &se)
			if err != nil {
				return nil, err
			}
			a = append(a, v)
		}
	case "true", "false":
		var s string
		if err := d.DecodeElement(&s, start); err != nil || s != "" {
			return nil, fmt.Errorf("<%s> is not empty", start.Name.Local)
		}
		return start.Name.Local == "true", nil
	case "string", "integer", "real":
		var s string
		if err := d.DecodeElement(&s, start); err != nil {
			return nil, err
		}
		switch start.Name.Local {
		case "integer":
			return strconv.ParseInt(s, 10, 64)
		case "real":
			return strconv.ParseFloat(s, 64)
		}
		return s, nil
	}
	return nil, fmt.Errorf("<%s> is not a property list value this test knows", start.Name.Local)
}
