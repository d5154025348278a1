package policy

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/warrennet/warren/overlay/wire"
)

func TestDiff(t *testing.T) {
	v1 := mustCompile(t, rules(
		`{"from": ["group:eng"], "to": ["192.168.0.0/24:22", "production-server:443"]}`,
		`{"from": ["group:ops"], "to": ["10.0.0.0/8:*"], "proto": "any"}`,
	))
	v2 := mustCompile(t, rules(
		`{"from": ["group:eng"], "to": ["192.168.0.0/24:22"]}`,
		`{"from": ["group:ops", "user:carol@example.com"], "to": ["10.0.0.0/8:*"], "proto": "any"}`,
		`{"from": ["*"], "to": ["[2001:db8::/64]:53"], "proto": "udp"}`,
	))
	const alice, bob, carol, dave = "alice@example.com", "bob@example.com", "carol@example.com", "dave@example.com"
	tests := []struct {
		name      string
		old, next *Compiled
		users     []string
		want      []wire.PolicyChange
	}{
		{
			name:  "from allow-all to a policy",
			next:  v1,
			users: []string{carol, ""},
			want: []wire.PolicyChange{
				{User: "", Lost: []string{"*"}},
				{User: alice, Gained: []string{"192.168.0.0/24:22/tcp", "192.168.0.10:443/tcp"}, Lost: []string{"*"}},
				{User: bob, Gained: []string{"10.0.0.0/8:*/any"}, Lost: []string{"*"}},
				{User: carol, Lost: []string{"*"}},
				{User: dave, Gained: []string{"192.168.0.0/24:22/tcp", "192.168.0.10:443/tcp"}, Lost: []string{"*"}},
			},
		},
		{
			name:  "back to allow-all",
			old:   v1,
			users: []string{alice},
			want: []wire.PolicyChange{
				{User: alice, Gained: []string{"*"}, Lost: []string{"192.168.0.0/24:22/tcp", "192.168.0.10:443/tcp"}},
				{User: bob, Gained: []string{"*"}, Lost: []string{"10.0.0.0/8:*/any"}},
				{User: dave, Gained: []string{"*"}, Lost: []string{"192.168.0.0/24:22/tcp", "192.168.0.10:443/tcp"}},
			},
		},
		{
			name:  "one policy to another",
			old:   v1,
			next:  v2,
			users: []string{"erin@example.com"},
			want: []wire.PolicyChange{
				{User: alice, Gained: []string{"[2001:db8::/64]:53/udp"}, Lost: []string{"192.168.0.10:443/tcp"}},
				{User: bob, Gained: []string{"[2001:db8::/64]:53/udp"}},
				{User: carol, Gained: []string{"10.0.0.0/8:*/any", "[2001:db8::/64]:53/udp"}},
				{User: dave, Gained: []string{"[2001:db8::/64]:53/udp"}, Lost: []string{"192.168.0.10:443/tcp"}},
				{User: "erin@example.com", Gained: []string{"[2001:db8::/64]:53/udp"}},
			},
		},
		{
			name:  "no change",
			old:   v2,
			next:  v2,
			users: []string{alice, ""},
		},
		{
			name:  "allow-all to allow-all",
			users: []string{alice},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Diff(tt.old, tt.next, tt.users)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Diff (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDiffSSH(t *testing.T) {
	const alice, bob, carol, dave = "alice@example.com", "bob@example.com", "carol@example.com", "dave@example.com"
	v1 := mustCompile(t, rules(
		`{"from": ["group:eng"], "to": ["192.168.0.0/24:443"]}`,
	))
	v2 := mustCompile(t, strings.TrimSuffix(rules(`{"from": ["group:eng"], "to": ["192.168.0.0/24:443"]}`), "}")+`,
"ssh": [
  {"from": ["group:eng"], "to": ["192.168.0.0/24"], "as": ["deploy", "alice"]},
  {"from": ["user:bob@example.com"], "to": ["192.168.0.0/24"], "as": ["root"]},
]}`)
	v3 := mustCompile(t, strings.TrimSuffix(rules(`{"from": ["group:eng"], "to": ["192.168.0.0/24:443"]}`), "}")+`,
"ssh": [
  {"from": ["group:eng"], "to": ["192.168.0.0/24"], "as": ["deploy"]},
  {"from": ["user:bob@example.com", "user:carol@example.com"], "to": ["192.168.0.0/24"], "as": ["root", "admin"]},
]}`)
	tests := []struct {
		name      string
		old, next *Compiled
		users     []string
		want      []wire.PolicyChange
	}{
		{
			name:  "ssh rules added",
			old:   v1,
			next:  v2,
			users: []string{""},
			want: []wire.PolicyChange{
				{User: alice, Gained: []string{"192.168.0.0/24:22/tcp"}, SSHGained: []string{"alice", "deploy"}},
				{User: bob, Gained: []string{"192.168.0.0/24:22/tcp"}, SSHGained: []string{"root"}},
				{User: dave, Gained: []string{"192.168.0.0/24:22/tcp"}, SSHGained: []string{"alice", "deploy"}},
			},
		},
		{
			name: "principals change, grants stay",
			old:  v2,
			next: v3,
			want: []wire.PolicyChange{
				{User: alice, SSHLost: []string{"alice"}},
				{User: bob, SSHGained: []string{"admin"}},
				{User: carol, Gained: []string{"192.168.0.0/24:22/tcp"}, SSHGained: []string{"admin", "root"}},
				{User: dave, SSHLost: []string{"alice"}},
			},
		},
		{
			name: "to allow-all, which grants no principals",
			old:  v3,
			want: []wire.PolicyChange{
				{User: alice, Gained: []string{"*"}, Lost: []string{"192.168.0.0/24:22/tcp", "192.168.0.0/24:443/tcp"}, SSHLost: []string{"deploy"}},
				{User: bob, Gained: []string{"*"}, Lost: []string{"192.168.0.0/24:22/tcp"}, SSHLost: []string{"admin", "root"}},
				{User: carol, Gained: []string{"*"}, Lost: []string{"192.168.0.0/24:22/tcp"}, SSHLost: []string{"admin", "root"}},
				{User: dave, Gained: []string{"*"}, Lost: []string{"192.168.0.0/24:22/tcp", "192.168.0.0/24:443/tcp"}, SSHLost: []string{"deploy"}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Diff(tt.old, tt.next, tt.users)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Diff (-want +got):\n%s", diff)
			}
		})
	}
}
