//go:build linux

package rtpcore

import (
	"testing"

	"github.com/pion/srtp/v3"
)

// TestForwardSimulcastZeroAllocs: forwarding a simulcast track to
// subscribers under congestion control (each packet rewritten, stamped
// with a transport-wide sequence number and counted by the estimator;
// every subscriber's transport feedback handled and the layer choice run
// on it) allocates nothing, and every subscriber gets exactly the packets
// of its own layer: the twelve subscribers, four on each layer, are sent
// four packets of each publisher packet.
func TestForwardSimulcastZeroAllocs(t *testing.T) {
	const n, runs = 12, 300
	nothing := func() {}
	l := newCongestionLoad(t, srtp.ProtectionProfileAeadAes128Gcm, n, 1, true, true, true, nothing, nothing)
	fwd0, fb0 := l.s.stats.Forwarded.Load(), l.s.stats.TWCCReceived.Load()
	if a := testing.AllocsPerRun(runs, l.step); a != 0 {
		t.Fatalf("%v allocations per publisher packet", a)
	}
	// AllocsPerRun steps once more before it counts.
	if got, want := l.s.stats.Forwarded.Load()-fwd0, uint64((runs+1)*n/3); got != want {
		t.Errorf("forwarded %d packets, want %d (each publisher packet to the %d subscribers of its layer)", got, want, n/3)
	}
	if l.s.stats.TWCCReceived.Load() == fb0 {
		t.Error("no transport feedback handled while counting")
	}
}

// TestForwardCongestionParts: BenchmarkForwardCongestionParts' loads are
// what they say, without the kernel's part: plain tracks go to every
// subscriber, simulcast ones to those of the packet's layer; transport
// feedback is handled under congestion control only (and there every
// estimator was fed in the warm-up: newCongestionLoad checks); nothing is
// allocated, and nothing reaches the sinks.
func TestForwardCongestionParts(t *testing.T) {
	// The shard forwards at each flush, every 16 packets: AllocsPerRun's
	// runs+1 steps are whole flushes.
	const n, runs = 6, 13*16 - 1
	nothing := func() {}
	for _, c := range congestionParts {
		t.Run(c.name, func(t *testing.T) {
			l := newCongestionLoad(t, srtp.ProtectionProfileAeadAes128Gcm, n, 16, c.simulcast, c.cc, false, nothing, nothing)
			fwd0, fb0 := l.s.stats.Forwarded.Load(), l.s.stats.TWCCReceived.Load()
			if a := testing.AllocsPerRun(runs, l.step); a != 0 {
				t.Fatalf("%v allocations per publisher packet", a)
			}
			per := n
			if c.simulcast {
				per = n / 3
			}
			if got, want := l.s.stats.Forwarded.Load()-fwd0, uint64((runs+1)*per); got != want {
				t.Errorf("forwarded %d packets, want %d", got, want)
			}
			if fb := l.s.stats.TWCCReceived.Load() - fb0; (fb > 0) != c.cc {
				t.Errorf("%d transport feedbacks handled", fb)
			}
			if q := l.sinks.queued(); q != 0 {
				t.Errorf("%d sinks got datagrams", q)
			}
		})
	}
}
