package netlab

import "testing"

func TestCPUMask(t *testing.T) {
	for _, tc := range []struct {
		n    int
		want string
	}{
		{1, "1"},
		{2, "3"},
		{8, "ff"},
		{32, "ffffffff"},
		{33, "1,ffffffff"},
		{72, "ff,ffffffff,ffffffff"},
	} {
		if got := cpuMask(tc.n); got != tc.want {
			t.Errorf("cpuMask(%d) = %q, want %q", tc.n, got, tc.want)
		}
	}
}
