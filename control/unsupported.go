package control

// unsupportedTargets are Sora operations Hayate knows and refuses with
// UNSUPPORTED-TARGET and the reason (README, "Sora compatibility: API
// targets"). Names from Sora's documentation and sora-devtools
// (docs/spec/sora-protocol.md §2.2).
var unsupportedTargets = []struct{ target, why string }{
	{"Sora_20171218.UpdateLicense", "Hayate has no license file"},
	{"Sora_20201124.ListSignalingNotifyMetadata", "the signaling notify metadata extension is not served yet"},
	{"Sora_20201124.GetSignalingNotifyMetadata", "the signaling notify metadata extension is not served yet"},
	{"Sora_20201124.PutSignalingNotifyMetadata", "the signaling notify metadata extension is not served yet"},
	{"Sora_20201124.PutSignalingNotifyMetadataItem", "the signaling notify metadata extension is not served yet"},
	{"Sora_20231220.StartRecording", "Hayate does not record"},
	{"Sora_20231220.StopRecording", "Hayate does not record"},
}
