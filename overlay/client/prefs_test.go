package client_test

import (
	"context"
	"os/user"
	"strconv"
	"testing"

	"github.com/warrennet/warren/overlay/client"
	"github.com/warrennet/warren/overlay/ctl"
)

// TestOperatorPref: `warren set --operator USER` resolves the user to a
// uid the socket then authorises by; "" clears it; an unknown user or
// root is refused and changes nothing.
func TestOperatorPref(t *testing.T) {
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user named nobody on this machine")
	}
	ctx := context.Background()
	eng, err := client.New(client.Config{StateDir: t.TempDir(), Platform: &fakePlatform{}})
	if err != nil {
		t.Fatal(err)
	}
	set := func(name string) (ctl.Prefs, error) { return eng.EditPrefs(ctx, ctl.PrefsEdit{Operator: &name}) }

	p, err := set("nobody")
	if err != nil || p.Operator == nil || p.Operator.Name != "nobody" || p.Operator.UID == 0 {
		t.Fatalf("set nobody = %+v, %v", p, err)
	}
	if got := eng.Prefs(ctx).Operator; got == nil || *got != *p.Operator || nobody.Uid != strconv.FormatUint(uint64(got.UID), 10) {
		t.Errorf("prefs operator = %+v, want nobody (uid %s)", got, nobody.Uid)
	}
	for _, tt := range []struct{ name, err string }{
		{"no-such-user-here", `no local user named "no-such-user-here"`},
		{"root", "root may do everything already: name another user as the operator"},
		{"0", "root may do everything already: name another user as the operator"},
	} {
		if _, err := set(tt.name); err == nil || err.Error() != tt.err {
			t.Errorf("set %q = %v, want %s", tt.name, err, tt.err)
		}
		if got := eng.Prefs(ctx).Operator; got == nil || got.Name != "nobody" {
			t.Errorf("a refused operator changed it to %+v", got)
		}
	}
	// A uid without a name is still a uid.
	if p, err := set("64999"); err != nil || p.Operator == nil || p.Operator.UID != 64999 {
		t.Errorf("set 64999 = %+v, %v", p, err)
	}
	if p, err := set(""); err != nil || p.Operator != nil {
		t.Errorf("clearing = %+v, %v", p, err)
	}
	if got := eng.Prefs(ctx).Operator; got != nil {
		t.Errorf("after clearing, operator %+v", got)
	}
}
