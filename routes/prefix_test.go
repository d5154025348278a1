package routes

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp/cmpopts"
)

// cmpOpts lets go-cmp compare netip values, whose fields are unexported.
var cmpOpts = cmpopts.EquateComparable(netip.Prefix{}, netip.Addr{})

var sentinels = []error{ErrInvalidPrefix, ErrHostBits, ErrReserved, ErrServedByOther}

// checkErr fails t unless err has exactly the text want and wraps exactly the
// sentinels in kinds.
func checkErr(t *testing.T, err error, want string, kinds ...error) {
	t.Helper()
	if err == nil {
		t.Fatalf("got nil error, want %q", want)
	}
	if got := err.Error(); got != want {
		t.Errorf("got error %q, want %q", got, want)
	}
	for _, s := range sentinels {
		wantIs := false
		for _, k := range kinds {
			wantIs = wantIs || k == s
		}
		if got := errors.Is(err, s); got != wantIs {
			t.Errorf("errors.Is(err, %q) = %v, want %v", s, got, wantIs)
		}
	}
}

type parseTest struct {
	in      string
	want    string  // canonical prefix, when there is no error
	wantErr string  // exact error text
	kinds   []error // sentinels the error wraps
}

func invalid(in string) parseTest {
	return parseTest{in: in, wantErr: `"` + in + `" is not a valid CIDR prefix (for example 192.168.0.0/24)`, kinds: []error{ErrInvalidPrefix}}
}

var parseTests = []parseTest{
	{in: "192.168.0.0/24", want: "192.168.0.0/24"},
	{in: "10.0.0.0/8", want: "10.0.0.0/8"},
	{in: "192.168.0.10/32", want: "192.168.0.10/32"},
	{in: "0.0.0.0/0", want: "0.0.0.0/0"},
	{in: "::/0", want: "::/0"},
	{in: "2001:db8::/32", want: "2001:db8::/32"},
	{in: "2001:DB8::/32", want: "2001:db8::/32"},
	{in: "2001:0db8:0000:0000::/48", want: "2001:db8::/48"},
	{in: "fd00::1/128", want: "fd00::1/128"},
	{in: "::1.2.3.4/128", want: "::102:304/128"},

	invalid(""),
	invalid("garbage"),
	invalid("192.168.0.0/33"),
	invalid("192.168.0"),
	invalid("192.168.0/24"),
	invalid("192.168.0.0/"),
	invalid("192.168.0.0/08"),
	invalid("192.168.0.0/+8"),
	invalid("192.168.0.0/-1"),
	invalid("192.168.0.0/24/8"),
	invalid("192.168.000.0/24"),
	invalid("256.0.0.0/8"),
	invalid("2001:db8::/129"),
	invalid(" 192.168.0.0/24"),
	invalid("192.168.0.0/24 "),
	invalid(" 192.168.0.10 "),
	invalid("fe80::1%eth0/64"),
	invalid("fe80::1%eth0"),
	{in: "192.168.0.0/24\n", wantErr: `"192.168.0.0/24\n" is not a valid CIDR prefix (for example 192.168.0.0/24)`, kinds: []error{ErrInvalidPrefix}},
	{in: "\x00", wantErr: `"\x00" is not a valid CIDR prefix (for example 192.168.0.0/24)`, kinds: []error{ErrInvalidPrefix}},

	{in: "192.168.0.10", wantErr: `"192.168.0.10" is an address, not a prefix; did you mean 192.168.0.10/32?`, kinds: []error{ErrInvalidPrefix}},
	{in: "2001:db8::1", wantErr: `"2001:db8::1" is an address, not a prefix; did you mean 2001:db8::1/128?`, kinds: []error{ErrInvalidPrefix}},
	{in: "2001:DB8::1", wantErr: `"2001:DB8::1" is an address, not a prefix; did you mean 2001:db8::1/128?`, kinds: []error{ErrInvalidPrefix}},
	{in: "::ffff:192.168.0.10", wantErr: `"::ffff:192.168.0.10" is an address, not a prefix; did you mean 192.168.0.10/32?`, kinds: []error{ErrInvalidPrefix}},

	{in: "192.168.0.1/24", wantErr: "192.168.0.1/24 has host bits set; did you mean 192.168.0.0/24?", kinds: []error{ErrHostBits, ErrInvalidPrefix}},
	{in: "10.1.2.3/8", wantErr: "10.1.2.3/8 has host bits set; did you mean 10.0.0.0/8?", kinds: []error{ErrHostBits, ErrInvalidPrefix}},
	{in: "192.168.0.10/0", wantErr: "192.168.0.10/0 has host bits set; did you mean 0.0.0.0/0?", kinds: []error{ErrHostBits, ErrInvalidPrefix}},
	{in: "2001:DB8::1/32", wantErr: "2001:db8::1/32 has host bits set; did you mean 2001:db8::/32?", kinds: []error{ErrHostBits, ErrInvalidPrefix}},

	{in: "::ffff:192.168.0.0/120", wantErr: "::ffff:192.168.0.0/120 is an IPv4-mapped IPv6 prefix; did you mean 192.168.0.0/24?", kinds: []error{ErrInvalidPrefix}},
	{in: "::ffff:192.168.0.1/120", wantErr: "::ffff:192.168.0.1/120 is an IPv4-mapped IPv6 prefix; did you mean 192.168.0.0/24?", kinds: []error{ErrInvalidPrefix}},
	{in: "::ffff:10.0.0.1/128", wantErr: "::ffff:10.0.0.1/128 is an IPv4-mapped IPv6 prefix; did you mean 10.0.0.1/32?", kinds: []error{ErrInvalidPrefix}},
	{in: "::ffff:0:0/96", wantErr: "::ffff:0.0.0.0/96 is an IPv4-mapped IPv6 prefix; did you mean 0.0.0.0/0?", kinds: []error{ErrInvalidPrefix}},
	// Shorter than /96, a mapped address always has host bits set.
	{in: "::ffff:0:0/90", wantErr: "::ffff:0.0.0.0/90 has host bits set; did you mean ::ffc0:0:0/90?", kinds: []error{ErrHostBits, ErrInvalidPrefix}},
}

func TestParsePrefix(t *testing.T) {
	for _, tt := range parseTests {
		got, err := ParsePrefix(tt.in)
		if tt.wantErr != "" {
			checkErr(t, err, tt.wantErr, tt.kinds...)
			if got != (netip.Prefix{}) {
				t.Errorf("ParsePrefix(%q) = %v with an error, want the zero prefix", tt.in, got)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParsePrefix(%q): got error %q, want %s", tt.in, err, tt.want)
			continue
		}
		if got.String() != tt.want {
			t.Errorf("ParsePrefix(%q) = %v, want %s", tt.in, got, tt.want)
		}
		checkCanonicalResult(t, got)
	}
}

// checkCanonicalResult fails t unless p is what ParsePrefix may return: masked,
// not IPv4-mapped, and reparsing its text gives p back.
func checkCanonicalResult(t *testing.T, p netip.Prefix) {
	t.Helper()
	if !p.IsValid() || p != p.Masked() || p.Addr().Is4In6() || p.Addr().Zone() != "" {
		t.Errorf("ParsePrefix returned non-canonical %v", p)
	}
	again, err := ParsePrefix(p.String())
	if err != nil || again != p {
		t.Errorf("ParsePrefix(%q) = %v, %v; want %v, nil", p.String(), again, err, p)
	}
}

func TestParsePrefixSuggestionsParse(t *testing.T) {
	// Every "did you mean X?" names an input ParsePrefix accepts.
	for _, tt := range parseTests {
		_, err := ParsePrefix(tt.in)
		if err == nil {
			continue
		}
		if s, ok := suggestion(err.Error()); ok {
			if _, err := ParsePrefix(s); err != nil {
				t.Errorf("ParsePrefix(%q) suggests %q, which fails: %v", tt.in, s, err)
			}
		}
	}
}

func TestCheckRoutable(t *testing.T) {
	reserved := func(p, name, r string) parseTest {
		return parseTest{in: p, wantErr: p + " overlaps " + name + " (" + r + ") and cannot be routed", kinds: []error{ErrReserved}}
	}
	tests := []parseTest{
		{in: "192.168.0.0/24"},
		{in: "10.0.0.0/8"},
		{in: "172.16.0.0/12"},
		{in: "8.8.8.8/32"},
		{in: "1.0.0.0/8"},
		{in: "100.64.0.0/11"},    // CGNAT below the overlay
		{in: "100.112.0.0/12"},   // CGNAT above the overlay
		{in: "126.0.0.0/8"},      // just below loopback
		{in: "128.0.0.0/8"},      // just above loopback
		{in: "223.255.255.0/24"}, // just below multicast
		{in: "2001:db8::/32"},
		{in: "fd00::/8"},
		{in: "::1:0:0/128"}, // just above IPv4-compatible
		{in: "fe00::/9"},    // next to link-local

		reserved("0.0.0.0/8", "this network", "0.0.0.0/8"),
		reserved("0.0.0.1/32", "this network", "0.0.0.0/8"),
		reserved("0.0.0.0/1", "this network", "0.0.0.0/8"),
		reserved("127.0.0.0/8", "loopback", "127.0.0.0/8"),
		reserved("127.0.0.1/32", "loopback", "127.0.0.0/8"),
		reserved("126.0.0.0/7", "loopback", "127.0.0.0/8"),
		reserved("169.254.0.0/16", "link-local", "169.254.0.0/16"),
		reserved("169.254.1.0/24", "link-local", "169.254.0.0/16"),
		reserved("128.0.0.0/1", "link-local", "169.254.0.0/16"),
		reserved("224.0.0.0/4", "multicast", "224.0.0.0/4"),
		reserved("239.1.2.3/32", "multicast", "224.0.0.0/4"),
		reserved("192.0.0.0/2", "IETF protocol assignments", "192.0.0.0/24"),
		reserved("240.0.0.0/4", "reserved (240.0.0.0/4)", "240.0.0.0/4"),
		reserved("255.255.255.255/32", "limited broadcast", "255.255.255.255/32"),
		reserved("100.96.0.0/12", "the Warren overlay range", "100.96.0.0/12"),
		reserved("100.100.1.0/24", "the Warren overlay range", "100.96.0.0/12"),
		reserved("100.64.0.0/10", "the Warren overlay range", "100.96.0.0/12"),
		reserved("::/128", "unspecified", "::/128"),
		reserved("::/1", "IPv4-compatible", "::/96"),
		reserved("::1/128", "loopback", "::1/128"),
		reserved("::2/128", "IPv4-compatible", "::/96"),
		reserved("::fffe:0:0/95", "IPv4-mapped", "::ffff:0.0.0.0/96"),
		reserved("fe80::/10", "link-local", "fe80::/10"),
		reserved("fe80::1/128", "link-local", "fe80::/10"),
		reserved("8000::/1", "link-local", "fe80::/10"),
		reserved("ff00::/8", "multicast", "ff00::/8"),
		reserved("ff02::1/128", "multicast", "ff00::/8"),

		{in: "0.0.0.0/0", wantErr: "0.0.0.0/0 would send all traffic to a connector; full tunnels are not supported", kinds: []error{ErrReserved}},
		{in: "::/0", wantErr: "::/0 would send all traffic to a connector; full tunnels are not supported", kinds: []error{ErrReserved}},
	}
	for _, tt := range tests {
		p := netip.MustParsePrefix(tt.in)
		err := CheckRoutable(p)
		if tt.wantErr == "" {
			if err != nil {
				t.Errorf("CheckRoutable(%v): got error %q, want nil", p, err)
			}
			continue
		}
		checkErr(t, err, tt.wantErr, tt.kinds...)
	}
}

func TestCheckRoutableNonCanonical(t *testing.T) {
	tests := []struct {
		p       netip.Prefix
		wantErr string
		kinds   []error
	}{
		{netip.Prefix{}, "invalid prefix", []error{ErrInvalidPrefix}},
		{netip.PrefixFrom(netip.MustParseAddr("10.0.0.0"), 33), "invalid prefix", []error{ErrInvalidPrefix}},
		{netip.MustParsePrefix("192.168.0.1/24"), "192.168.0.1/24 has host bits set; did you mean 192.168.0.0/24?", []error{ErrHostBits, ErrInvalidPrefix}},
		{netip.MustParsePrefix("::ffff:192.168.0.0/120"), "::ffff:192.168.0.0/120 is an IPv4-mapped IPv6 prefix; did you mean 192.168.0.0/24?", []error{ErrInvalidPrefix}},
	}
	for _, tt := range tests {
		checkErr(t, CheckRoutable(tt.p), tt.wantErr, tt.kinds...)
	}
}

func TestParseRoutable(t *testing.T) {
	tests := []parseTest{
		{in: "192.168.0.0/24", want: "192.168.0.0/24"},
		{in: "2001:DB8::/32", want: "2001:db8::/32"},
		invalid("192.168.0.0/33"),
		{in: "192.168.0.10", wantErr: `"192.168.0.10" is an address, not a prefix; did you mean 192.168.0.10/32?`, kinds: []error{ErrInvalidPrefix}},
		{in: "192.168.0.1/24", wantErr: "192.168.0.1/24 has host bits set; did you mean 192.168.0.0/24?", kinds: []error{ErrHostBits, ErrInvalidPrefix}},
		{in: "127.0.0.0/8", wantErr: "127.0.0.0/8 overlaps loopback (127.0.0.0/8) and cannot be routed", kinds: []error{ErrReserved}},
		{in: "0.0.0.0/0", wantErr: "0.0.0.0/0 would send all traffic to a connector; full tunnels are not supported", kinds: []error{ErrReserved}},
	}
	for _, tt := range tests {
		got, err := ParseRoutable(tt.in)
		if tt.wantErr != "" {
			checkErr(t, err, tt.wantErr, tt.kinds...)
			if got != (netip.Prefix{}) {
				t.Errorf("ParseRoutable(%q) = %v with an error, want the zero prefix", tt.in, got)
			}
			continue
		}
		if err != nil || got.String() != tt.want {
			t.Errorf("ParseRoutable(%q) = %v, %v; want %s, nil", tt.in, got, err, tt.want)
		}
	}
}

func mustPrefixes(t testing.TB, ss ...string) []netip.Prefix {
	t.Helper()
	ps := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		ps[i] = netip.MustParsePrefix(s)
	}
	return ps
}
