package node

import (
	"runtime"
	"runtime/debug"
)

// BuildInfo says which build runs: `hayate --version`, hayate_build_info.
type BuildInfo struct {
	Version   string `json:"version"`
	Revision  string `json:"revision"`  // VCS revision, "unknown" when not built from a checkout
	Time      string `json:"time"`      // the revision's commit time (RFC 3339), "" when unknown
	Modified  bool   `json:"modified"`  // built from a tree with uncommitted changes
	GoVersion string `json:"goversion"` // the Go toolchain
}

// Build reads the build information the Go toolchain stamps into the binary
// (runtime/debug.ReadBuildInfo: vcs.revision, vcs.time, vcs.modified).
func Build() BuildInfo {
	b := BuildInfo{Version: Version, Revision: "unknown", GoVersion: runtime.Version()}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return b
	}
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Revision = s.Value
		case "vcs.time":
			b.Time = s.Value
		case "vcs.modified":
			b.Modified = s.Value == "true"
		}
	}
	return b
}
