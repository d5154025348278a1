package controlplane

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warrennet/warren/overlay/coordclient"
	"github.com/warrennet/warren/overlay/wire"
	"github.com/warrennet/warren/test/coordtest"
)

// childEnv names the file of node credentials a child process serves.
const childEnv = "WARREN_BENCH_NODES"

func TestMain(m *testing.M) {
	if f := os.Getenv(childEnv); f != "" {
		os.Exit(runNodes(f))
	}
	os.Exit(m.Run())
}

// nodesFile is what the parent hands the child.
type nodesFile struct {
	URL, Pin    string
	Credentials []string
}

// runNodes holds one session per credential and prints "ready N" once
// every node has a netmap, then "seen PREFIX UNIXNANO" the first time any
// node applies a netmap holding PREFIX, one line per node. It runs until
// its standard input closes.
func runNodes(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var nf nodesFile
	if err := json.Unmarshal(b, &nf); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		_, _ = bufio.NewReader(os.Stdin).ReadString(0) // returns at EOF
		cancel()
	}()
	var (
		mu    sync.Mutex
		out   = bufio.NewWriter(os.Stdout)
		ready int
		wg    sync.WaitGroup
	)
	for _, cred := range nf.Credentials {
		seen := map[netip.Prefix]bool{}
		first := true
		apply := func(_ context.Context, nm *wire.NetMap) error {
			now := time.Now().UnixNano()
			mu.Lock()
			defer mu.Unlock()
			for _, r := range nm.Routes {
				if !seen[r.Prefix] {
					seen[r.Prefix] = true
					fmt.Fprintf(out, "seen %s %d\n", r.Prefix, now)
				}
			}
			if first {
				first = false
				ready++
				if ready == len(nf.Credentials) {
					fmt.Fprintf(out, "ready %d\n", ready)
				}
			}
			return out.Flush()
		}
		s, err := coordclient.NewSession(coordclient.SessionConfig{URL: nf.URL, Pin: nf.Pin, Credential: cred, Apply: apply})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		wg.Go(func() { _ = s.Run(ctx) })
	}
	wg.Wait()
	return 0
}

func heapAlloc() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

func BenchmarkRoutePush1000(b *testing.B) { benchmarkRoutePush(b, 1000, 20) }
func BenchmarkRoutePush5000(b *testing.B) { benchmarkRoutePush(b, 5000, 20) }

// benchmarkRoutePush connects n simulated nodes (one connector, the rest
// clients) and adds `changes` routes one at a time, measuring for each the
// delay from AddRoute's return to each node applying it.
func benchmarkRoutePush(b *testing.B, n, changes int) {
	ctx := context.Background()
	dir := b.TempDir()
	base := heapAlloc()

	srv := coordtest.Start(b, coordtest.Options{})
	co := srv.Coord

	nf := nodesFile{URL: srv.URL, Pin: srv.Pin}
	for i := range n {
		role, name := wire.RoleClient, "client-"+strconv.Itoa(i)
		if i == 0 {
			role, name = wire.RoleConnector, "office"
		}
		resp, err := co.CreateToken(ctx, wire.CreateTokenRequest{Role: role, Name: name})
		if err != nil {
			b.Fatal(err)
		}
		tok, _ := wire.ParseToken(resp.Token)
		var k wire.Key
		rand.NewChaCha8([32]byte{byte(i), byte(i >> 8), byte(i >> 16), 1}).Read(k[:])
		er, err := co.Enroll(ctx, tok.Secret, wire.EnrollRequest{PublicKey: k})
		if err != nil {
			b.Fatal(err)
		}
		nf.Credentials = append(nf.Credentials, er.Credential)
	}
	nodesPath := filepath.Join(dir, "nodes.json")
	data, _ := json.Marshal(nf)
	if err := os.WriteFile(nodesPath, data, 0o600); err != nil {
		b.Fatal(err)
	}

	child := exec.Command(os.Args[0], "-test.run=^$", "-test.bench=^$")
	child.Env = append(os.Environ(), childEnv+"="+nodesPath)
	child.Stderr = os.Stderr
	stdin, _ := child.StdinPipe()
	stdout, _ := child.StdoutPipe()
	if err := child.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		stdin.Close()
		child.Wait()
	}()
	lines := make(chan string, 4096)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	connectStart := time.Now()
	waitFor(b, lines, func(l string) bool { return strings.HasPrefix(l, "ready ") }, 120*time.Second)
	connectTime := time.Since(connectStart)
	perNode := float64(heapAlloc()-base) / float64(n)

	var lat []time.Duration
	for c := range changes {
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(c), 0, 0}), 16)
		t0 := time.Now()
		if _, err := co.AddRoute(ctx, wire.AddRouteRequest{Prefix: p.String(), Connector: "office"}); err != nil {
			b.Fatal(err)
		}
		got := 0
		want := "seen " + p.String() + " "
		waitFor(b, lines, func(l string) bool {
			if !strings.HasPrefix(l, want) {
				return false
			}
			ns, _ := strconv.ParseInt(strings.TrimPrefix(l, want), 10, 64)
			lat = append(lat, time.Unix(0, ns).Sub(t0))
			got++
			return got == n
		}, 30*time.Second)
	}
	slices.Sort(lat)
	pct := func(q float64) float64 { return float64(lat[int(q*float64(len(lat)-1))]) / float64(time.Millisecond) }
	b.ReportMetric(pct(0.50), "push-p50-ms")
	b.ReportMetric(pct(0.99), "push-p99-ms")
	b.ReportMetric(perNode/1024, "coord-heap-KiB/node")
	b.ReportMetric(connectTime.Seconds(), "connect-all-s")
	b.Logf("%d nodes, %d route changes: push p50 %.1f ms, p99 %.1f ms (goal p99 ≤ 1000 ms); coordinator heap %.1f KiB/node (goal ≤ 64)", n, changes, pct(0.5), pct(0.99), perNode/1024)
}

func waitFor(b *testing.B, lines <-chan string, match func(string) bool, limit time.Duration) {
	b.Helper()
	timeout := time.After(limit)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				b.Fatal("simulated nodes exited")
			}
			if match(l) {
				return
			}
		case <-timeout:
			b.Fatalf("no answer from the simulated nodes within %v", limit)
		}
	}
}
