package cluster

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/hayate-sfu/hayate/mode"
)

func testTable(nodes ...*nodeRec) table {
	t := newTable()
	for _, n := range nodes {
		t.Nodes[n.Name] = n
	}
	return t
}

// TestPlacementRule is Sora's rule (docs/spec/cluster.md §1 item 3, 3.3 step 5): the lowest
// connections / maximum wins; on a tie the requester; blocked, expired and
// not-eligible nodes never.
func TestPlacementRule(t *testing.T) {
	t.Parallel()
	n := func(name string, conns, maxc int) *nodeRec {
		return &nodeRec{Name: name, Inc: 1, Conns: conns, MaxConns: maxc}
	}
	cases := []struct {
		name      string
		nodes     []*nodeRec
		requester string
		eligible  []string
		want      string
	}{
		{"least loaded", []*nodeRec{n("a", 10, 100), n("b", 0, 100), n("c", 5, 100)}, "a", []string{"a", "b", "c"}, "b"},
		{"ratio not count", []*nodeRec{n("a", 10, 100), n("b", 5, 20)}, "b", []string{"a", "b"}, "a"},
		{"tie to requester", []*nodeRec{n("a", 3, 10), n("b", 3, 10), n("c", 3, 10)}, "c", []string{"a", "b", "c"}, "c"},
		{"tie, requester loaded", []*nodeRec{n("a", 3, 10), n("b", 1, 10), n("c", 1, 10)}, "a", []string{"a", "b", "c"}, "b"},
		{"max 0 counts as 1", []*nodeRec{n("a", 2, 0), n("b", 1, 0)}, "a", []string{"a", "b"}, "b"},
		{"not eligible", []*nodeRec{n("a", 9, 10), n("b", 0, 10)}, "a", []string{"a"}, "a"},
		{"none eligible", []*nodeRec{n("a", 0, 10)}, "a", nil, ""},
		{"unknown eligible", []*nodeRec{n("a", 0, 10)}, "a", []string{"zz"}, ""},
	}
	for _, c := range cases {
		tab := testTable(c.nodes...)
		got := tab.place(c.requester, c.eligible)
		name := ""
		if got != nil {
			name = got.Name
		}
		if name != c.want {
			t.Errorf("%s: placed on %q, want %q", c.name, name, c.want)
		}
	}
	blocked := testTable(&nodeRec{Name: "a", Inc: 1, Operator: mode.BlockNewSession},
		&nodeRec{Name: "b", Inc: 1, Health: mode.BlockNewConnection},
		&nodeRec{Name: "c", Inc: 1, Expired: true},
		&nodeRec{Name: "d", Inc: 1, Conns: 1000, MaxConns: 1})
	if got := blocked.place("a", []string{"a", "b", "c", "d"}); got == nil || got.Name != "d" {
		t.Errorf("blocked nodes: placed on %v, want d", got)
	}
}

// TestTableCommands walks the commands of docs/spec/cluster.md §3.2 through one table.
func TestTableCommands(t *testing.T) {
	t.Parallel()
	tab := newTable()
	idx := uint64(0)
	apply := func(c command) (result, []string) {
		idx++
		return tab.apply(idx, &c)
	}
	if r, _ := apply(command{Op: opHeartbeat, Node: "a", Inc: 1}); r.OK {
		t.Fatal("heartbeat of an unregistered node accepted")
	}
	apply(command{Op: opRegister, Node: "a", Inc: 1, At: 42, Mode: mode.Normal})
	apply(command{Op: opRegister, Node: "b", Inc: 1})
	for _, n := range []string{"a", "b"} {
		if r, _ := apply(command{Op: opHeartbeat, Node: n, Inc: 1, Mode: mode.Normal}); !r.OK {
			t.Fatalf("heartbeat %s refused: %+v", n, r)
		}
	}
	r, changed := apply(command{Op: opClaim, Channel: "x", Node: "a", Eligible: []string{"a", "b"}})
	if !r.OK || r.Owner != "a" || r.Index != idx || len(changed) != 1 {
		t.Fatalf("claim: %+v %v", r, changed)
	}
	claimIdx := r.Index
	if r, changed := apply(command{Op: opClaim, Channel: "x", Node: "b", Eligible: []string{"a", "b"}}); r.Owner != "a" || r.Index != claimIdx || changed != nil {
		t.Fatalf("second claim: %+v %v", r, changed)
	}
	if r, _ := apply(command{Op: opRelease, Channel: "x", Node: "a", Inc: 1, Index: claimIdx + 1}); r.OK {
		t.Fatal("release with a wrong claim index accepted")
	}
	if r, _ := apply(command{Op: opRelease, Channel: "x", Node: "a", Inc: 1, Index: claimIdx}); !r.OK || tab.Channels["x"] != nil {
		t.Fatalf("release: %+v", r)
	}
	apply(command{Op: opClaim, Channel: "y", Node: "b", Eligible: []string{"a", "b"}})
	beats := tab.Nodes["b"].Beats
	// An expire that raced a heartbeat is void.
	apply(command{Op: opHeartbeat, Node: "b", Inc: 1, Mode: mode.Normal})
	if r, _ := apply(command{Op: opExpire, Node: "b", Inc: 1, Beats: beats}); r.OK || tab.Channels["y"] == nil {
		t.Fatalf("stale expire applied: %+v", r)
	}
	if r, changed := apply(command{Op: opExpire, Node: "b", Inc: 1, Beats: tab.Nodes["b"].Beats}); !r.OK || len(changed) != 1 || tab.Channels["y"] != nil || !tab.Nodes["b"].Expired {
		t.Fatalf("expire: %+v %v", r, changed)
	}
	if r, _ := apply(command{Op: opClaim, Channel: "z", Node: "b", Eligible: []string{"a", "b"}}); r.Owner != "a" {
		t.Fatalf("claim with b expired went to %q", r.Owner)
	}
	// A new incarnation drops the old one's channels.
	apply(command{Op: opClaim, Channel: "w", Node: "a", Eligible: []string{"a"}})
	r, changed = apply(command{Op: opRegister, Node: "a", Inc: 2, At: 99})
	if !r.OK || len(changed) != 2 || len(tab.Channels) != 0 || tab.Nodes["a"].MemberSince != 42 {
		t.Fatalf("register new incarnation: %+v %v channels %v node %+v", r, changed, tab.Channels, tab.Nodes["a"])
	}
	if r, _ := apply(command{Op: opHeartbeat, Node: "a", Inc: 1}); r.OK {
		t.Fatal("heartbeat of the old incarnation accepted")
	}
	apply(command{Op: opSetMode, Node: "a", Mode: mode.BlockNewSession})
	if tab.Nodes["a"].Operator != mode.BlockNewSession {
		t.Fatal("SetMode not applied")
	}
	if r, _ := apply(command{Op: opRemove, Node: "a", Beats: tab.Nodes["a"].Beats + 1}); r.OK {
		t.Fatal("stale remove applied")
	}
	if r, _ := apply(command{Op: opRemove, Node: "a"}); !r.OK || tab.Nodes["a"] != nil {
		t.Fatal("remove not applied")
	}
	if tab.Applied != idx {
		t.Fatalf("Applied = %d, want %d", tab.Applied, idx)
	}
}

// TestTableDeterministic: two tables fed the same log end equal, and a
// snapshot round trip preserves the table.
func TestTableDeterministic(t *testing.T) {
	t.Parallel()
	log := []command{
		{Op: opRegister, Node: "a", Inc: 1, At: 1}, {Op: opRegister, Node: "b", Inc: 1, At: 2},
		{Op: opHeartbeat, Node: "a", Inc: 1, Conns: 3}, {Op: opHeartbeat, Node: "b", Inc: 1, Conns: 1},
		{Op: opClaim, Channel: "x", Node: "a", Eligible: []string{"a", "b"}},
		{Op: opClaim, Channel: "y", Node: "a", Eligible: []string{"a", "b"}},
		{Op: opExpire, Node: "b", Inc: 1, Beats: 2},
		{Op: opClaim, Channel: "z", Node: "b", Eligible: []string{"a", "b"}},
	}
	run := func() table {
		tab := newTable()
		for i := range log {
			c := log[i]
			tab.apply(uint64(i+1), &c)
		}
		return tab
	}
	t1, t2 := run(), run()
	if !reflect.DeepEqual(t1, t2) {
		t.Fatal("same log, different tables")
	}
	data, err := json.Marshal(&t1)
	if err != nil {
		t.Fatal(err)
	}
	t3 := newTable()
	if err := json.Unmarshal(data, &t3); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(t1, t3) || !reflect.DeepEqual(t1.clone(), t1) {
		t.Fatal("snapshot round trip changed the table")
	}
	// x and y went to b (fewer connections), died with b's expiry; z went to a.
	if t1.Channels["z"] == nil || t1.Channels["z"].Owner != "a" || len(t1.Channels) != 1 {
		t.Fatalf("channels: %v", t1.Channels)
	}
}

// TestGoodbyeClosesIncarnation: a node's own Expire as it closes drops its
// channels even if a heartbeat of it came in between, and a heartbeat of
// that incarnation applied later does not bring the node back; a new
// incarnation's Register does.
func TestGoodbyeClosesIncarnation(t *testing.T) {
	t.Parallel()
	tab := newTable()
	idx := uint64(0)
	apply := func(c command) (result, []string) {
		idx++
		return tab.apply(idx, &c)
	}
	apply(command{Op: opRegister, Node: "a", Inc: 1, Mode: mode.Normal})
	apply(command{Op: opHeartbeat, Node: "a", Inc: 1, Mode: mode.Normal})
	apply(command{Op: opClaim, Channel: "x", Node: "a", Eligible: []string{"a"}})
	apply(command{Op: opHeartbeat, Node: "a", Inc: 1, Mode: mode.Normal}) // raced the goodbye
	if r, changed := apply(command{Op: opExpire, Node: "a", Inc: 1, Bye: true}); !r.OK || len(changed) != 1 || tab.Channels["x"] != nil {
		t.Fatalf("goodbye: %+v %v", r, changed)
	}
	if r, _ := apply(command{Op: opHeartbeat, Node: "a", Inc: 1, Mode: mode.Normal}); r.OK || !tab.Nodes["a"].Expired {
		t.Fatalf("a late heartbeat revived a closed incarnation: %+v %+v", r, tab.Nodes["a"])
	}
	if r, _ := apply(command{Op: opClaim, Channel: "y", Node: "a", Eligible: nil}); r.OK {
		t.Fatalf("a closed node got a channel: %+v", r)
	}
	apply(command{Op: opRegister, Node: "a", Inc: 2, Mode: mode.Normal})
	if r, _ := apply(command{Op: opHeartbeat, Node: "a", Inc: 2, Mode: mode.Normal}); !r.OK || tab.Nodes["a"].Expired || tab.Nodes["a"].Closed {
		t.Fatalf("new incarnation: %+v %+v", r, tab.Nodes["a"])
	}
}
