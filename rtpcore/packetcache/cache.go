// Package packetcache keeps the last packets of one RTP stream so that a
// subscriber's NACK (RFC 4585 §6.2.1) can be answered without asking the
// publisher again.
//
// The cache is a ring indexed by sequence number modulo its size, with the
// packet bytes in one preallocated block: storing and loading allocate
// nothing. A mutex guards it: the publisher's receive loop stores, and any
// subscriber's receive loop may load.
package packetcache

import "sync"

// SlotSize is the largest packet kept.
const SlotSize = 1500

// Cache is a ring of the last Size packets of one stream.
type Cache struct {
	mu    sync.Mutex
	mask  uint16
	seq   []uint16
	n     []uint16 // 0 = empty slot
	mem   []byte
	last  uint16
	fresh bool
}

// New returns a cache of size packets; size is rounded up to a power of two
// (at most 32768, half the sequence space, so a slot cannot be mistaken for
// one a full cycle later).
func New(size int) *Cache {
	s := 1
	for s < size && s < 1<<15 {
		s <<= 1
	}
	return &Cache{mask: uint16(s - 1), seq: make([]uint16, s), n: make([]uint16, s), mem: make([]byte, s*SlotSize), fresh: true}
}

// Store keeps a copy of pkt under its sequence number. Packets over SlotSize
// are not kept.
func (c *Cache) Store(seq uint16, pkt []byte) {
	if len(pkt) > SlotSize || len(pkt) == 0 {
		return
	}
	i := int(seq & c.mask)
	c.mu.Lock()
	copy(c.mem[i*SlotSize:], pkt)
	c.seq[i], c.n[i] = seq, uint16(len(pkt))
	if c.fresh || seqNewer(seq, c.last) {
		c.last, c.fresh = seq, false
	}
	c.mu.Unlock()
}

// Load appends the packet with sequence number seq to dst and reports
// whether it was in the cache. A packet older than Size packets behind the
// newest is gone, even if its slot has not been reused.
func (c *Cache) Load(seq uint16, dst []byte) ([]byte, bool) {
	i := int(seq & c.mask)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[i] == 0 || c.seq[i] != seq || c.fresh || uint16(c.last-seq) > c.mask {
		return dst, false
	}
	return append(dst, c.mem[i*SlotSize:i*SlotSize+int(c.n[i])]...), true
}

// seqNewer reports whether a is after b in RTP sequence order (RFC 3550
// §A.1: the shorter way round the 16-bit circle).
func seqNewer(a, b uint16) bool { return a != b && uint16(a-b) < 1<<15 }
