// Package docs holds Hayate's design record (design.md) and the protocol
// notes the code cites (spec/), as Markdown; no Go code. Its tests keep the
// repository's references honest: every file, section and decision a
// comment or document names exists here, and the README's package map
// lists exactly the packages `go list ./...` does.
package docs
