package control

import (
	"context"
	"encoding/json"
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
	ListClusterNodes(ctx context.Context, stale bool) (any, error)
	ListClusterChannels(ctx context.Context, stale bool) (any, error)
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
	raw, ok := p["node_name_list"]
	if !ok || string(raw) == "null" {
		return nil, missing("node_name_list")
	}
	var names []string
	if err := json.Unmarshal(raw, &names); err != nil || len(names) == 0 {
		return nil, invalidList("node_name_list")
	}
	for _, n := range names {
		if n == "" || len(n) > 255 {
			return nil, invalidList("node_name_list")
		}
	}
	if err := a.cluster.InitCluster(ctx, names); err != nil {
		return nil, err
	}
	return map[string]any{"node_name_list": names}, nil
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
