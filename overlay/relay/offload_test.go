package relay

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/ipv4"

	"golang.zx2c4.com/wireguard/conn"

	"github.com/warrennet/warren/overlay/wire"
)

func TestSegments(t *testing.T) {
	for _, tt := range []struct {
		in   string
		seg  int
		want []string
	}{
		{"abcdefgh", 0, []string{"abcdefgh"}},
		{"abcdefgh", 8, []string{"abcdefgh"}},
		{"abcdefgh", 20, []string{"abcdefgh"}},
		{"abcdefgh", 4, []string{"abcd", "efgh"}},
		{"abcdefgh", 3, []string{"abc", "def", "gh"}},
		{"abcdefgh", 1, []string{"a", "b", "c", "d", "e", "f", "g", "h"}},
		{"", 4, []string{""}},
	} {
		var got []string
		for b := range segments([]byte(tt.in), tt.seg) {
			got = append(got, string(b))
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("segments(%q, %d) = %q, want %q", tt.in, tt.seg, got, tt.want)
		}
	}
}

// TestCoalesce checks how Send groups datagrams into runs: equal sizes
// join, a shorter one ends its run, a longer one starts the next, and no
// run passes maxSegments frames or maxRunLen bytes.
func TestCoalesce(t *testing.T) {
	const frame = DataHeaderLen
	sizes := func(spec ...int) []int { return spec } // datagram sizes
	repeat := func(n, size int) []int { return slices.Repeat([]int{size}, n) }
	big := maxRunLen/(frame+1400) + 1 // 1400-byte datagrams that overflow one run
	for _, tt := range []struct {
		name   string
		sizes  []int
		perRun []int
	}{
		{"one", sizes(100), []int{1}},
		{"equal", repeat(10, 100), []int{10}},
		{"short tail ends a run", sizes(100, 100, 60, 100), []int{3, 1}},
		{"longer starts a run", sizes(60, 100, 100), []int{1, 2}},
		{"segment cap", repeat(maxSegments+5, 10), []int{maxSegments, 5}},
		{"byte cap", repeat(big, 1400), []int{big - 1, 1}},
		{"whole batch", repeat(conn.IdealBatchSize, 1), []int{maxSegments, maxSegments}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sb := NewBind(BindConfig{}).sendPool.Get().(*sendBatch)
			var key wire.Key
			key[0] = 7
			putDataHeader(sb.hdr[:], &key)
			bufs := make([][]byte, len(tt.sizes))
			for i, n := range tt.sizes {
				bufs[i] = []byte(strings.Repeat(string(rune('a'+i%26)), n))
			}
			to := &net.UDPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 7}
			ms := sb.coalesce(bufs, to, sb.hdr[:])
			if got := sb.perRun[:len(ms)]; !slices.Equal(got, tt.perRun) {
				t.Fatalf("datagrams per run: got %v, want %v", got, tt.perRun)
			}
			next := 0
			for i, m := range ms {
				if m.Addr != to {
					t.Errorf("run %d addressed to %v", i, m.Addr)
				}
				var run []byte
				for _, b := range m.Buffers {
					run = append(run, b...)
				}
				if len(run) > maxRunLen {
					t.Errorf("run %d is %d bytes, over %d", i, len(run), maxRunLen)
				}
				seg := DataHeaderLen + len(bufs[next])
				if hasOOB := len(m.OOB) > 0; hasOOB != (tt.perRun[i] > 1 && offloadSpace > 0) {
					t.Errorf("run %d of %d datagrams: segment size given %v", i, tt.perRun[i], hasOOB)
				}
				// Splitting the run as the kernel would gives back the
				// datagrams, in order, each a DATA frame for key.
				for b := range segments(run, seg) {
					f, err := Parse(b)
					if err != nil || f.Type != TypeData || f.Key != key || string(f.Payload) != string(bufs[next]) {
						t.Fatalf("run %d, frame for datagram %d: %v %+v", i, next, err, f)
					}
					next++
				}
			}
			if next != len(bufs) {
				t.Errorf("runs hold %d datagrams, want %d", next, len(bufs))
			}
		})
	}
}

// TestOffloadThroughRelay sends bursts of equal-sized datagrams through
// the relay, as a bulk TCP flow does, and checks that every one arrives
// once and in order, and that where the kernel offers segmentation
// offload the relay forwarded them in runs.
func TestOffloadThroughRelay(t *testing.T) {
	checkNoLeaks(t)
	h := newRelay(t)
	a, b := newTestBind(t, h, BindConfig{}), newTestBind(t, h, BindConfig{})
	a.waitConnected()
	b.waitConnected()

	const bursts = 8
	var sent []string
	for burst := range bursts {
		batch := make([]string, conn.IdealBatchSize)
		for i := range batch {
			batch[i] = fmt.Sprintf("burst %d datagram %03d %s", burst, i, strings.Repeat("x", 1000))
		}
		if burst == bursts-1 {
			batch[len(batch)-1] = "a short last one" // ends its run
		}
		if err := a.send(b.key, batch...); err != nil {
			t.Fatal(err)
		}
		sent = append(sent, batch...)
		// One burst at a time: loopback drops what overflows a socket.
		for _, want := range batch {
			select {
			case got := <-b.rx:
				if got.data != want {
					t.Fatalf("received %.24q, want %.24q", got.data, want)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("timed out waiting for %.24q", want)
			}
		}
	}
	// The relay counts a run after sending it: the last one may reach b
	// before its count does.
	var st Stats
	waitFor(t, "the relay's count of what it forwarded", func() bool {
		st = h.srv.Stats()
		return st.Forwarded >= uint64(len(sent))
	})
	if st.Forwarded != uint64(len(sent)) || st.Dropped != (Drops{}) {
		t.Errorf("relay forwarded %d of %d, dropped %+v", st.Forwarded, len(sent), st.Dropped)
	}
	if h.srv.gso.Load() {
		if st.Runs == 0 || st.RunFrames < uint64(len(sent))/2 {
			t.Errorf("offload on, but the relay sent %d runs of %d frames in all, for %d datagrams", st.Runs, st.RunFrames, len(sent))
		}
	}
	t.Logf("relay: %d runs, %d frames in runs, %d datagrams", st.Runs, st.RunFrames, st.Forwarded)
}

// TestOffloadMixedDestinations sends equal-sized datagrams to two peers
// back to back, which the relay's socket may receive as one coalesced
// message: the runs the relay cuts out of it must each reach their own
// peer, whole and in order, whether a run keeps the buffer it was read
// into or is copied out of it.
func TestOffloadMixedDestinations(t *testing.T) {
	checkNoLeaks(t)
	h := newRelay(t)
	a, b, c := newTestBind(t, h, BindConfig{}), newTestBind(t, h, BindConfig{}), newTestBind(t, h, BindConfig{})
	a.waitConnected()
	b.waitConnected()
	c.waitConnected()

	const per = 16
	burst := func(round int, to *testBind) []string {
		batch := make([]string, per)
		for i := range batch {
			batch[i] = fmt.Sprintf("round %d to %.8s datagram %02d %s", round, to.key.String(), i, strings.Repeat("y", 900))
		}
		if err := a.send(to.key, batch...); err != nil {
			t.Fatal(err)
		}
		return batch
	}
	for round := range 4 {
		toB := burst(round, b)
		toC := burst(round, c)
		toB = append(toB, burst(round, b)...)
		b.expect(a.key, toB...)
		c.expect(a.key, toC...)
	}
}

// eioConn is a batchConn whose kernel refuses segmentation offload: a
// message carrying a segment size fails with EIO, as udp_send_skb does
// on a device without checksum offload. Everything else goes to next,
// or, if next is nil, is recorded.
type eioConn struct {
	next    batchConn
	mu      sync.Mutex
	refused int
	sent    [][]byte
}

var errEIO = &os.SyscallError{Syscall: "sendmmsg", Err: syscall.EIO}

func (c *eioConn) ReadBatch(ms []ipv4.Message, flags int) (int, error) {
	return c.next.ReadBatch(ms, flags)
}

func (c *eioConn) SetReadDeadline(t time.Time) error { return c.next.SetReadDeadline(t) }

func (c *eioConn) WriteBatch(ms []ipv4.Message, flags int) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, m := range ms {
		if len(m.OOB) > 0 {
			c.refused++
			return i, errEIO
		}
		if c.next == nil {
			var b []byte
			for _, p := range m.Buffers {
				b = append(b, p...)
			}
			c.sent = append(c.sent, b)
		}
	}
	if c.next != nil {
		return c.next.WriteBatch(ms, flags)
	}
	return len(ms), nil
}

func TestOffloadRefusedByKernel(t *testing.T) {
	if !offloadRefused(fmt.Errorf("write: %w", errEIO)) || offloadRefused(&os.SyscallError{Err: syscall.EPERM}) {
		t.Fatal("offloadRefused does not single out EIO")
	}

	// The relay's writer: a run the kernel refuses goes out as separate
	// datagrams, counted once each, and runs are off from then on.
	t.Run("relay", func(t *testing.T) {
		s, err := NewServer(ServerConfig{Key: mustKey(t), Allowed: func(_, _ wire.Key) bool { return true }})
		if err != nil {
			t.Fatal(err)
		}
		s.gso.Store(true)
		var run []byte
		for i := range 3 {
			f, _ := Frame{Type: TypeData, Key: testPub(1), Payload: []byte{byte('a' + i), 'x'}}.Append(nil)
			run = append(run, f...)
		}
		seg := len(run) / 3
		buf := append(getBuf(len(run))[:0], run...)
		var q queue
		s.sched.push(&q, outPkt{buf: buf, addr: &net.UDPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 9}, data: true, seg: seg, n: 3})
		c := &eioConn{}
		if !newWriter(s, c).sendOnce() {
			t.Fatal("nothing to send")
		}
		if c.refused != 1 || len(c.sent) != 3 {
			t.Fatalf("refused %d runs and sent %d datagrams, want 1 and 3", c.refused, len(c.sent))
		}
		for i, b := range c.sent {
			if !bytes.Equal(b, run[i*seg:(i+1)*seg]) {
				t.Errorf("datagram %d is %x, want %x", i, b, run[i*seg:(i+1)*seg])
			}
		}
		if st := s.Stats(); st.Forwarded != 3 || st.Dropped.WriteError != 0 || st.Runs != 0 {
			t.Errorf("stats %+v, want 3 forwarded, no write error, no run", st)
		}
		if s.gso.Load() {
			t.Error("runs still on after the kernel refused one")
		}
	})

	// The Bind: the same, and every datagram still arrives, in order.
	t.Run("bind", func(t *testing.T) {
		checkNoLeaks(t)
		h := newRelay(t)
		var c *eioConn
		a := openTestBind(t, h, BindConfig{RelayOnly: true}, func(b *Bind) {
			b.wrapConn = func(bc batchConn) batchConn {
				c = &eioConn{next: bc}
				return c
			}
		})
		b := newTestBind(t, h, BindConfig{})
		a.waitConnected()
		b.waitConnected()
		// Runs on, whatever this kernel offers: eioConn refuses every
		// run before the kernel could see one.
		s := a.b.live.Load()
		s.gso.Store(true)
		var want []string
		for i := range 10 {
			want = append(want, fmt.Sprintf("datagram %02d", i))
		}
		if err := a.send(b.key, want...); err != nil {
			t.Fatalf("Send: %v", err)
		}
		b.expect(a.key, want...)
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.refused != 1 || s.gso.Load() {
			t.Errorf("refused %d runs, runs still on: %v; want 1 refused and runs off", c.refused, s.gso.Load())
		}
	})
}
