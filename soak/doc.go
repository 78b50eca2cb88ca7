// Package soak holds the churn soak test (TestSoak): clients on our own
// stack join and leave channels with media flowing against the real
// binary while the mode is toggled, and the final report accounts for
// every connect, refusal, webhook event, packet and leak. `make soak` runs
// it for 4 min 30 s; `make test` runs a 20 s version.
package soak
