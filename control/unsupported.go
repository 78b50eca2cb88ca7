package control

// unsupportedTargets are Sora operations Hayate knows and refuses with
// UNSUPPORTED-TARGET and the reason (README, "Sora compatibility: API
// targets"). Names from Sora's documentation and sora-devtools
// (docs/spec/sora-protocol.md §2.2).
var unsupportedTargets = []struct{ target, why string }{
	{"Sora_20171218.UpdateLicense", "Hayate has no license file"},
	{"Sora_20231220.StartRecording", "Hayate does not record"},
	{"Sora_20231220.StopRecording", "Hayate does not record"},
}
