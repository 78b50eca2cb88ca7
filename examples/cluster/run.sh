#!/usr/bin/env bash
# Starts the three example nodes on loopback, forms the cluster (the first
# time) and shows it; Ctrl-C stops all three. Run from the repository root:
#   make cluster-example        (or: examples/cluster/run.sh bin/hayate)
set -euo pipefail
bin=${1:-bin/hayate}
dir=$(dirname "$0")
pids=()
trap 'kill -TERM "${pids[@]}" 2>/dev/null; wait' EXIT INT TERM
for i in 1 2 3; do
  "$bin" -config "$dir/node$i.conf" 2> >(sed -u "s/^/[hayate-$i] /" >&2) &
  pids+=($!)
done
api() { curl -fsS -X POST -H "x-sora-target: $2" ${3:+-d "$3"} "http://127.0.0.1:1300$1/"; }
for i in 1 2 3; do
  for _ in $(seq 100); do api "$i" Sora_20211215.GetMode >/dev/null 2>&1 && break; sleep 0.1; done
done
names='["hayate-1@127.0.0.1:15691","hayate-2@127.0.0.1:15692","hayate-3@127.0.0.1:15693"]'
if out=$(api 1 Sora_20221221.InitCluster "{\"node_name_list\":$names}" 2>&1); then
  echo "cluster formed: $out"
else
  echo "InitCluster: $out (a cluster restarted from cluster-data/ needs none)"
fi
sleep 2
api 1 Sora_20211215.ListClusterNodes; echo
echo "signaling: ws://127.0.0.1:15001/signaling ws://127.0.0.1:15002/signaling ws://127.0.0.1:15003/signaling"
wait
