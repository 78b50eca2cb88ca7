package cluster

import (
	"testing"
)

// TestThreeNodesRoute: a fresh cluster places a new channel on the node
// asked (all loads equal), and the other nodes redirect to it.
func TestThreeNodesRoute(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t, false)
	nodes := tc.startN(3)
	for i, n := range nodes {
		// A new channel is placed on the node asked while that node is
		// eligible; on a loaded machine its lease may lapse for a moment
		// and the channel go elsewhere, so routeHere asks with new names
		// until one is served here.
		ch := routeHere(t, n, "room-"+n.name)
		if d := route(t, n, ch); !d.Serve || d.Owner != n.name {
			t.Fatalf("%s: Route(%s) = %+v, want served here", n.name, ch, d)
		}
		other := nodes[(i+1)%3]
		d := route(t, other, ch)
		if d.Serve || d.Owner != n.name || d.RedirectURL != "ws://"+n.name+".test/signaling" {
			t.Fatalf("%s: Route(%s) = %+v, want redirect to %s", other.name, ch, d, n.name)
		}
		if !n.Serving(ch) || other.Serving(ch) {
			t.Fatalf("Serving(%s): owner %v other %v", ch, n.Serving(ch), other.Serving(ch))
		}
	}
	if o := tc.hist.overlaps(); len(o) > 0 {
		t.Fatalf("overlaps: %v", o)
	}
}
