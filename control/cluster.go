package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/hayate-sfu/hayate/cluster"
)

// Cluster is what the cluster operations need from a clustered node
// (docs/spec/cluster.md §3.1 and 3.6; Sora's field names, docs/spec/sora-protocol.md
// 5.1). Its errors are this package's cluster errors (ErrCluster...), or
// they answer INTERNAL-ERROR.
type Cluster interface {
	InitCluster(ctx context.Context, nodeNames []string) error
	RegisterClusterNode(ctx context.Context, contactNodeName string) error
	PurgeClusterNode(ctx context.Context, targetNodeName string) error
	// ListClusterNodes and ListClusterChannels read the replicated tables
	// after a read barrier through the leader, so they show every change
	// acknowledged before the request; with stale they answer from this
	// node's copy at once (which may lag the leader by its replication
	// delay, and is all a node cut off from the majority can show).
	ListClusterNodes(ctx context.Context, stale bool) ([]cluster.NodeStatus, error)
	ListClusterChannels(ctx context.Context, stale bool) ([]cluster.ChannelStatus, error)
	// Fanout runs an API operation on every other node of the cluster
	// (their API's Local) and returns their answers.
	Fanout(ctx context.Context, target string, body []byte) []PeerAnswer
}

// PeerAnswer is one node's answer to a fanned-out operation: its HTTP
// status and JSON body, or why it did not answer.
type PeerAnswer struct {
	Node   string
	Status int
	Body   []byte
	Err    error
}

// reach says which nodes a cluster-wide operation runs on.
type reach uint8

const (
	// everyNode: the operation runs on every node (a channel's
	// connections are on the node that owns it, which need not be the node
	// the request reaches, and while a channel moves, on two nodes).
	everyNode reach = iota + 1
	// firstFound: the operation names one connection or session; it runs
	// on the other nodes only when this node does not have it.
	firstFound
	// onAsk: the operation asks the other nodes itself when its request
	// says so (ListRtcStats with local: false); serve does not fan it out.
	onAsk
)

// clusterWide are the operations that act on the whole cluster.
var clusterWide = map[string]reach{
	"Sora_20151104.DisconnectChannel":       everyNode,
	"Sora_20151104.DisconnectClient":        everyNode,
	"Sora_20151104.DisconnectConnection":    firstFound,
	"Sora_20201120.DisconnectChannelByRole": everyNode,
	"Sora_20160711.PushChannel":             everyNode,
	"Sora_20160711.PushClient":              everyNode,
	"Sora_20160711.PushConnection":          firstFound,
	"Sora_20201120.PushChannelByRole":       everyNode,
	"Sora_20241211.RequestKeyFrame":         firstFound,
	"Sora_20230628.TerminateSession":        everyNode,
	"Sora_20231220.GetSession":              firstFound,
	"Sora_20211215.ListRtcStats":            onAsk,
	// A channel's spotlight and its connections' statistics are on the
	// node that serves it.
	"Sora_20200807.FocusSpotlight":           firstFound,
	"Sora_20200807.FocusSpotlightFixed":      firstFound,
	"Sora_20200807.UnfocusSpotlight":         firstFound,
	"Sora_20200807.ChangeSpotlightNumber":    firstFound,
	"Sora_20211215.RequestSpotlightRid":      firstFound,
	"Sora_20211215.ResetSpotlightRid":        firstFound,
	"Sora_20211215.BatchRequestSpotlightRid": firstFound,
	"Sora_20211215.GetRtcStats":              firstFound,
	"Sora_20170529.GetStatsConnection":       firstFound,
	"Sora_20170529.GetStatsClient":           firstFound,
	// A connection's extension metadata is on its node.
	"Sora_20201124.ListSignalingNotifyMetadata":       firstFound,
	"Sora_20201124.GetSignalingNotifyMetadata":        firstFound,
	"Sora_20201124.PutSignalingNotifyMetadata":        firstFound,
	"Sora_20201124.PutSignalingNotifyMetadataItem":    firstFound,
	"Sora_20201124.DeleteSignalingNotifyMetadata":     firstFound,
	"Sora_20201124.DeleteSignalingNotifyMetadataItem": firstFound,
}

// fanout runs a cluster-wide operation on the other nodes once it has run
// here with answer out or error err. Invalid requests (any error but a 404)
// go nowhere, nor a firstFound operation that found its connection or
// session here. The answer is this node's when it found the channel, else the
// first other node's that did; else the refusal of a node that has the
// channel (a valid request it cannot carry out there, such as a spotlight
// change on a channel without spotlight); else the most precise not-found
// error (a node that has the channel but not the connection or client says
// so); else, when some node did not answer (or answered what is not the
// API's), CLUSTER-UNAVAILABLE, as the channel may be there.
func (a *API) fanout(ctx context.Context, target string, body []byte, out any, err error) (any, error) {
	var e *Error
	if err != nil && (!errors.As(err, &e) || e.Status != http.StatusNotFound) || err == nil && clusterWide[target] == firstFound {
		return out, err
	}
	answers := a.cluster.Fanout(ctx, target, body)
	if err == nil {
		return out, nil
	}
	silent := 0
	var refused error
	for _, ans := range answers {
		var pe struct {
			Type    string `json:"error_type"`
			Message string `json:"message"`
		}
		switch {
		case ans.Err != nil || ans.Status >= 500:
			silent++
		case ans.Status == http.StatusOK:
			return json.RawMessage(ans.Body), nil
		case json.Unmarshal(ans.Body, &pe) != nil || pe.Type == "":
			silent++ // not an API answer
		case ans.Status != http.StatusNotFound:
			refused = &Error{Status: ans.Status, Type: pe.Type, Message: pe.Message}
		case pe.Type != errChannelNotFound.Type:
			err = &Error{Status: http.StatusNotFound, Type: pe.Type, Message: pe.Message}
		}
	}
	if refused != nil {
		return nil, refused
	}
	if silent > 0 && errors.Is(err, errChannelNotFound) {
		return nil, wrapped{ErrClusterUnavailable, fmt.Sprintf("%s: no node that answered has the channel; %d did not answer", ErrClusterUnavailable.Message, silent)}
	}
	return nil, err
}

func (a *API) clusterOn() error {
	if a.cluster == nil {
		return errClusterNotEnabled
	}
	return nil
}

// initCluster is Sora_20221221.InitCluster {"node_name_list": [...]}.
func (a *API) initCluster(ctx context.Context, p params) (any, error) {
	if err := a.clusterOn(); err != nil {
		return nil, err
	}
	names, err := p.list("node_name_list")
	if err != nil {
		return nil, err
	}
	if err := a.cluster.InitCluster(ctx, names); err != nil {
		return nil, err
	}
	return InitClusterAnswer{names}, nil
}

// registerClusterNode is Sora_20211215.RegisterClusterNode {"contact_node_name"}.
func (a *API) registerClusterNode(ctx context.Context, p params) (any, error) {
	if err := a.clusterOn(); err != nil {
		return nil, err
	}
	return a.nodeOp(ctx, p, "contact_node_name", a.cluster.RegisterClusterNode)
}

// purgeClusterNode is Sora_20220629.PurgeClusterNode {"target_node_name"}.
func (a *API) purgeClusterNode(ctx context.Context, p params) (any, error) {
	if err := a.clusterOn(); err != nil {
		return nil, err
	}
	return a.nodeOp(ctx, p, "target_node_name", a.cluster.PurgeClusterNode)
}

// nodeOp runs an operation on the node named by parameter param and
// answers with that parameter.
func (a *API) nodeOp(ctx context.Context, p params, param string, op func(context.Context, string) error) (any, error) {
	name, err := p.id(param)
	if err != nil {
		return nil, err
	}
	if err := op(ctx, name); err != nil {
		return nil, err
	}
	return map[string]string{param: name}, nil
}

// listClusterNodes is Sora_20211215.ListClusterNodes {"stale"?: bool}.
func (a *API) listClusterNodes(ctx context.Context, p params) (any, error) {
	if err := a.clusterOn(); err != nil {
		return nil, err
	}
	stale, err := p.flag("stale")
	if err != nil {
		return nil, err
	}
	return a.cluster.ListClusterNodes(ctx, stale)
}

// listClusterChannels is Sora_20211215.ListClusterChannels {"stale"?: bool}.
func (a *API) listClusterChannels(ctx context.Context, p params) (any, error) {
	if err := a.clusterOn(); err != nil {
		return nil, err
	}
	stale, err := p.flag("stale")
	if err != nil {
		return nil, err
	}
	return a.cluster.ListClusterChannels(ctx, stale)
}
