package cli

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestPermute(t *testing.T) {
	app := New(Env{}, Roles{})
	tests := []struct{ in, want string }{
		{"warren routes add 192.168.0.0/24 --connector office", "warren routes add --connector office -- 192.168.0.0/24"},
		{"warren routes add 192.168.0.0/24 --connector=office --comment lan", "warren routes add --connector=office --comment lan -- 192.168.0.0/24"},
		{"warren routes add --connector office 192.168.0.0/24", "warren routes add --connector office -- 192.168.0.0/24"},
		{"warren routes ls --data /var/lib/warren --json", "warren --data /var/lib/warren routes ls --json"},
		{"warren --data d routes rm 10.0.0.0/8", "warren --data d routes rm -- 10.0.0.0/8"},
		{"warren coordinator --data d --listen :8443", "warren coordinator --data d --listen :8443"},
		{"warren token create --role client --name laptop --reusable --expires 24h", "warren token create --role client --name laptop --reusable --expires 24h"},
		{"warren token revoke abc --admin-token-file f", "warren --admin-token-file f token revoke -- abc"},
		{"warren routes add 10.0.0.0/8 --bogus", "warren routes add --bogus -- 10.0.0.0/8"},
		{"warren routes get -- -1", "warren routes get -- -1"},
		{"warren -v nodes ls", "warren -v nodes ls"},
		{"warren", "warren"},
	}
	for _, tt := range tests {
		got := strings.Join(Permute(app, strings.Fields(tt.in)), " ")
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("Permute(%q) (-want +got):\n%s", tt.in, diff)
		}
	}
}

// netipEqual lets go-cmp compare netip values, whose fields are unexported.
var netipEqual = cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{})
