package cli

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/warrennet/warren/internal/testutil"
	"github.com/warrennet/warren/overlay/ctl"
)

// TestNC: stdin goes to the daemon's connection, which half-closes at its
// end, and what comes back goes to stdout unescaped; failures are one
// line and a non-zero exit.
func TestNC(t *testing.T) {
	d := &laptopDaemon{echo: testutil.EchoTCP(t)}
	in := append(bytes.Repeat([]byte("ssh bytes \x00\x1b[31m "), 20000), '\n')
	out, _, err := runAgainst(t, d, Env{Stdin: bytes.NewReader(in)}, "nc", "echo", "22")
	if err != nil {
		t.Fatalf("nc: %v", err)
	}
	if !bytes.Equal([]byte(out), in) {
		t.Errorf("nc echoed %d bytes, want the %d sent, unchanged", len(out), len(in))
	}
	// No stdin: the connection is half-closed at once and ends.
	if out, _, err := runAgainst(t, d, Env{}, "nc", "echo", "22"); err != nil || out != "" {
		t.Errorf("nc without stdin = %q, %v", out, err)
	}

	for _, tt := range []struct {
		args []string
		err  string
	}{
		{[]string{"nc", "elsewhere", "22"}, "dialing elsewhere:22: connection refused"},
		{[]string{"nc", "echo"}, "usage: warren nc HOST PORT"},
		{[]string{"nc", "echo", "22", "33"}, "usage: warren nc HOST PORT"},
		{[]string{"nc", "echo", "0"}, `"0" is not a port number (1-65535)`},
		{[]string{"nc", "echo", "ssh"}, `"ssh" is not a port number (1-65535)`},
		{[]string{"nc", "echo", "65536"}, `"65536" is not a port number (1-65535)`},
		{[]string{"nc", "bad host", "22"}, `"bad host" is not a host name or an IP address`},
		{[]string{"nc", "fe80::1%eth0", "22"}, `"fe80::1%eth0" is not a host name or an IP address`},
		{[]string{"nc", "", "22"}, `"" is not a host name or an IP address`},
		{[]string{"nc", "--timeout", "0s", "echo", "22"}, "--timeout 0s is not a positive duration (for example 30s)"},
	} {
		_, _, err := runAgainst(t, d, Env{}, tt.args...)
		if err == nil || err.Error() != tt.err || ExitStatus(err) == 0 {
			t.Errorf("%q = %v, want %q and a failure", tt.args, err, tt.err)
		}
	}
}

// whyDaemon answers why: 192.168.0.0/24 and the name lanhost are
// tunnelled, other addresses and names not, the name nosuch unknown.
type whyDaemon struct{ laptopDaemon }

func (d *whyDaemon) Why(_ context.Context, q ctl.WhyQuery) (ctl.Why, error) {
	switch {
	case q.Host == "nosuch":
		return ctl.Why{}, errors.New("looking up nosuch: no such host")
	case q.Host == "lanhost":
		q.IP = netip.MustParseAddr("192.168.0.10")
	case q.Host != "":
		q.IP = netip.MustParseAddr("198.51.100.7")
	}
	tunnelled := netip.MustParsePrefix("192.168.0.0/24").Contains(q.IP)
	return ctl.Why{IP: q.IP, Tunnelled: tunnelled, Reason: q.IP.String() + " is what it is"}, nil
}

// TestWhyQuiet: `warren why --quiet DEST` prints nothing and answers
// with its exit status: 0 tunnelled, 1 not, 2 for an error.
func TestWhyQuiet(t *testing.T) {
	d := &whyDaemon{}
	for _, tt := range []struct {
		dest   string
		status int
		err    string
	}{
		{"192.168.0.10", 0, ""},
		{"192.168.0.10:22", 0, ""},
		{"lanhost", 0, ""},
		{"lanhost:22", 0, ""},
		{"198.51.100.7", 1, ""},
		{"example.com", 1, ""},
		{"nosuch", 2, "looking up nosuch: no such host"},
		{"192.168.0.10:99999", 2, `"192.168.0.10:99999" is not IP, NAME, IP:PORT or NAME:PORT, optionally /PROTO (IPv6 with a port: [2001:db8::1]:22)`},
		{"bad host", 2, `"bad host" is not IP, NAME, IP:PORT or NAME:PORT, optionally /PROTO (IPv6 with a port: [2001:db8::1]:22)`},
	} {
		out, _, err := runAgainst(t, d, Env{}, "why", "--quiet", tt.dest)
		gotErr := ""
		if err != nil {
			gotErr = err.Error()
		}
		if out != "" || ExitStatus(err) != tt.status || gotErr != tt.err {
			t.Errorf("why --quiet %q = exit %d, %q, output %q; want exit %d, %q, no output", tt.dest, ExitStatus(err), gotErr, out, tt.status, tt.err)
		}
	}
	// Without --quiet a name is explained like an address.
	out, _, err := runAgainst(t, d, Env{}, "why", "lanhost")
	if err != nil || !strings.HasPrefix(out, "192.168.0.10 is what it is\n") {
		t.Errorf("why lanhost = %q, %v", out, err)
	}
	if _, _, err := runAgainst(t, d, Env{}, "why", "--quiet", "--json", "lanhost"); err == nil || ExitStatus(err) != 2 {
		t.Errorf("why --quiet --json = %v (exit %d), want exit 2", err, ExitStatus(err))
	}
}
