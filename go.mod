module github.com/hayate-sfu/hayate

go 1.26

require (
	github.com/gobwas/ws v1.5.0
	github.com/pion/sdp/v3 v3.0.20
)

require (
	github.com/gobwas/httphead v0.1.0 // indirect
	github.com/pion/randutil v0.1.0 // indirect
)
