package routes

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// suggestion extracts X from an error message ending in "did you mean X?".
func suggestion(msg string) (string, bool) {
	const marker = "; did you mean "
	i := strings.LastIndex(msg, marker)
	if i < 0 || !strings.HasSuffix(msg, "?") {
		return "", false
	}
	return msg[i+len(marker) : len(msg)-1], true
}

func FuzzParsePrefix(f *testing.F) {
	for _, tt := range parseTests {
		f.Add(tt.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePrefix(s)
		if err != nil {
			msg := err.Error()
			if msg == "" || strings.ContainsAny(msg, "\n\r") {
				t.Fatalf("ParsePrefix(%q): error %q is not one non-empty line", s, msg)
			}
			if !errors.Is(err, ErrInvalidPrefix) {
				t.Fatalf("ParsePrefix(%q): error %q does not wrap ErrInvalidPrefix", s, msg)
			}
			if p != (netip.Prefix{}) {
				t.Fatalf("ParsePrefix(%q) = %v with an error, want the zero prefix", s, p)
			}
			if sug, ok := suggestion(msg); ok {
				if _, err := ParsePrefix(sug); err != nil {
					t.Fatalf("ParsePrefix(%q) suggests %q, which fails: %v", s, sug, err)
				}
			}
			return
		}
		checkCanonicalResult(t, p)
		// Whatever ParsePrefix accepts, CheckRoutable judges on reserved
		// ranges alone.
		if err := CheckRoutable(p); err != nil && !errors.Is(err, ErrReserved) {
			t.Fatalf("CheckRoutable(%v) = %q, want nil or ErrReserved", p, err)
		}
	})
}

const maxFuzzEntries = 100

// decodeEntries builds table entries from fuzz bytes: per entry a header
// byte (bit 0: IPv6; bits 1-2: owner), a length byte, then 4 or 16 address
// bytes. Prefixes are masked; mapped and duplicate prefixes are skipped. At
// most maxFuzzEntries are decoded, to keep each run fast.
func decodeEntries(b []byte) []Entry {
	var es []Entry
	seen := make(map[netip.Prefix]bool)
	for len(b) >= 2 && len(es) < maxFuzzEntries {
		h, bits := b[0], int(b[1])
		n := 4
		if h&1 == 1 {
			n = 16
		}
		b = b[2:]
		if len(b) < n {
			break
		}
		a, _ := netip.AddrFromSlice(b[:n])
		b = b[n:]
		p := netip.PrefixFrom(a, bits%(a.BitLen()+1)).Masked()
		if p.Addr().Is4In6() || seen[p] {
			continue
		}
		seen[p] = true
		es = append(es, Entry{Prefix: p, Owner: owners[h>>1&3]})
	}
	return es
}

// decodeAddrs builds lookup addresses from fuzz bytes: per address a kind byte
// (IPv4, IPv6, IPv6 with a zone, IPv4-mapped IPv6, invalid) and its bytes.
func decodeAddrs(b []byte) []netip.Addr {
	var as []netip.Addr
	for len(b) >= 1 {
		k := b[0] % 5
		b = b[1:]
		n := 4
		if k == 1 || k == 2 {
			n = 16
		}
		if k == 4 {
			as = append(as, netip.Addr{})
			continue
		}
		if len(b) < n {
			break
		}
		a, _ := netip.AddrFromSlice(b[:n])
		b = b[n:]
		switch k {
		case 2:
			a = a.WithZone("eth0")
		case 3:
			a = netip.AddrFrom16(a.As16())
		}
		as = append(as, a)
	}
	return as
}

func FuzzLookup(f *testing.F) {
	f.Add([]byte{0, 8, 10, 0, 0, 0, 2, 16, 10, 1, 0, 0, 4, 24, 10, 1, 2, 0}, []byte{0, 10, 1, 2, 3, 0, 10, 2, 0, 0, 3, 10, 1, 2, 3})
	f.Add([]byte{1, 32, 0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 48, 0x20, 1, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
		[]byte{2, 0x20, 1, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 4})
	f.Add([]byte{0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, []byte{0, 1, 2, 3, 4, 3, 1, 2, 3, 4})
	f.Fuzz(func(t *testing.T, table, addrs []byte) {
		es := decodeEntries(table)
		tbl, err := NewTable(es)
		if err != nil {
			t.Fatalf("NewTable(%v): %v", es, err)
		}
		checkTable(t, tbl, es, append(decodeAddrs(addrs), probesAround(es)...))
	})
}
