// Package mode holds Sora's node mode and the lock-free mode word read on the
// admission path.
//
// Sora documents three modes (https://sora-doc.shiguredo.jp/MODE):
// normal accepts every new connection, block_new_session refuses a connection
// that would start a new session and block_new_connection refuses every new
// connection. Existing connections are never touched by a mode.
//
// A node has two sources of mode: the operator (ChangeMode, initial_mode) and
// the node's own health (a cluster node that has just started or lost its
// lease blocks itself). The effective mode is the stricter of the two. Both
// live in one atomic word so that the admission path reads them with one load,
// no lock and no allocation.
package mode

import (
	"sync/atomic"
)

// Mode is one of Sora's three modes. The numeric order is the order of
// strictness, so the stricter of two modes is the larger.
type Mode uint32

// The modes, from the least to the most strict.
const (
	Normal             Mode = 0
	BlockNewSession    Mode = 1
	BlockNewConnection Mode = 2
)

const (
	nameNormal             = "normal"
	nameBlockNewSession    = "block_new_session"
	nameBlockNewConnection = "block_new_connection"
)

// String returns Sora's wire name of the mode.
func (m Mode) String() string {
	switch m {
	case Normal:
		return nameNormal
	case BlockNewSession:
		return nameBlockNewSession
	case BlockNewConnection:
		return nameBlockNewConnection
	default:
		return "invalid"
	}
}

// Blocking reports whether the mode refuses some new connections.
func (m Mode) Blocking() bool { return m != Normal }

// Parse returns the mode with Sora's wire name s.
func Parse(s string) (Mode, error) {
	switch s {
	case nameNormal:
		return Normal, nil
	case nameBlockNewSession:
		return BlockNewSession, nil
	case nameBlockNewConnection:
		return BlockNewConnection, nil
	default:
		return Normal, ErrInvalid
	}
}

// MarshalText implements encoding.TextMarshaler with Sora's wire name.
func (m Mode) MarshalText() ([]byte, error) {
	if m > BlockNewConnection {
		return nil, ErrInvalid
	}
	return []byte(m.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (m *Mode) UnmarshalText(b []byte) error {
	v, err := Parse(string(b))
	if err != nil {
		return err
	}
	*m = v
	return nil
}

// Stricter returns the stricter of a and b.
func Stricter(a, b Mode) Mode {
	if a > b {
		return a
	}
	return b
}

// Refusal says why a new connection is refused; RefuseNone admits it.
type Refusal uint8

// Refusals by mode.
const (
	RefuseNone Refusal = iota
	RefuseNewConnection
	RefuseNewSession
)

// Reason is the WebSocket close reason sent to a refused client.
func (r Refusal) Reason() string {
	switch r {
	case RefuseNewConnection:
		return "BLOCKED-NEW-CONNECTION"
	case RefuseNewSession:
		return "BLOCKED-NEW-SESSION"
	default:
		return ""
	}
}

// Admit decides, for the effective mode m, whether a new connection may join
// a channel. sessionLive says whether the channel already has a live session
// on this node. It is the whole admission rule of the mode feature.
func Admit(m Mode, sessionLive bool) Refusal {
	switch {
	case m == BlockNewConnection:
		return RefuseNewConnection
	case m == BlockNewSession && !sessionLive:
		return RefuseNewSession
	default:
		return RefuseNone
	}
}

// Word is the node's mode word: the operator mode in the low byte and the
// health mode in the next one. The zero value is normal/normal.
type Word struct {
	v atomic.Uint32
}

// NewWord returns a word holding operator mode op and a normal health mode.
func NewWord(op Mode) *Word {
	w := &Word{}
	w.v.Store(uint32(op))
	return w
}

func unpack(v uint32) (op, health Mode) { return Mode(v & 0xff), Mode(v >> 8 & 0xff) }

// Load returns the effective mode: the stricter of operator and health mode.
func (w *Word) Load() Mode {
	op, health := unpack(w.v.Load())
	return Stricter(op, health)
}

// Operator returns the mode last set by the operator.
func (w *Word) Operator() Mode {
	op, _ := unpack(w.v.Load())
	return op
}

// Health returns the mode the node has put itself in (normal when healthy).
func (w *Word) Health() Mode {
	_, health := unpack(w.v.Load())
	return health
}

// SetOperator stores the operator mode and returns the effective mode before
// and after the change.
func (w *Word) SetOperator(m Mode) (before, after Mode) {
	return w.update(func(_, health Mode) (Mode, Mode) { return m, health })
}

// SetHealth stores the health mode and returns the effective mode before and
// after the change.
func (w *Word) SetHealth(m Mode) (before, after Mode) {
	return w.update(func(op, _ Mode) (Mode, Mode) { return op, m })
}

func (w *Word) update(f func(op, health Mode) (Mode, Mode)) (before, after Mode) {
	for {
		old := w.v.Load()
		op, health := unpack(old)
		nop, nhealth := f(op, health)
		nv := uint32(nop) | uint32(nhealth)<<8
		if w.v.CompareAndSwap(old, nv) {
			return Stricter(op, health), Stricter(nop, nhealth)
		}
	}
}
