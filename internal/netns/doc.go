// Package netns runs a test in a network namespace of its own, for tests
// that must bind fixed ports (the defaults of `make run`, the example
// cluster's configs): in their own namespace those ports cannot collide
// with another test run, a running node or anything else on the machine.
// Linux only; it needs root, or unprivileged user namespaces.
package netns
