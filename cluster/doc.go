// Package cluster decides which node of a Hayate cluster serves each
// channel, and keeps the node's health mode, on embedded hashicorp/raft
// (DESIGN decision 10; the design is spec/cluster.md section 3).
//
// Placeholder: the full package manual follows.
package cluster
