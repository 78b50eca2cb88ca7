package clustercert

import "errors"

// Sentinel errors.
var (
	// ErrExists refuses to overwrite credentials already on disk.
	ErrExists = errors.New("clustercert: file exists; refusing to overwrite")
	// ErrBadName is a node name that cannot be a cluster node name.
	ErrBadName = errors.New("clustercert: invalid node name")
	// ErrNoCA is a CA directory without a usable CA certificate and key.
	ErrNoCA = errors.New("clustercert: not a CA directory")
)
