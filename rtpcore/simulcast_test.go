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
	l := newCongestionLoad(t, srtp.ProtectionProfileAeadAes128Gcm, n, 1, true, true, nothing, nothing)
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
