#!/usr/bin/env bash
# Runs `make test` RUNS times (default 20) on a fresh clone of this
# repository's HEAD while `go test -race ./...` of the same clone runs beside
# it in a loop, so that the suite is shown to pass on a machine as loaded as
# CI's can be. Prints one line per run and a summary; the logs stay in the
# work directory it names. Usage: scripts/stress-suite.sh [RUNS]
set -u
runs=${1:-20}
src=$(git rev-parse --show-toplevel)
work=$(mktemp -d /tmp/hayate-stress.XXXXXX)
git clone -q "$src" "$work/clone"
cd "$work/clone" || exit 1
commit=$(git rev-parse --short HEAD)
echo "stress: $runs x make test on a fresh clone of $commit, go test -race ./... beside it; logs in $work"

(
	i=0
	while [ ! -e "$work/stop" ]; do
		i=$((i + 1))
		if go test -race -count=1 -timeout 15m ./... >"$work/beside-$i.log" 2>&1; then
			echo "beside $i: ok"
		else
			echo "beside $i: FAIL"
		fi
	done
) >"$work/beside.txt" 2>&1 &
beside=$!

pass=0
for i in $(seq 1 "$runs"); do
	start=$(date +%s)
	if make test >"$work/run-$i.log" 2>&1; then
		r=ok
		pass=$((pass + 1))
	else
		r=FAIL
	fi
	echo "run $i: $r in $(($(date +%s) - start)) s (load average $(cut -d' ' -f1 /proc/loadavg))"
done
touch "$work/stop"
wait "$beside"
echo "make test: $pass of $runs green on $commit; beside it go test -race ./...: $(grep -c ': ok' "$work/beside.txt") green, $(grep -c FAIL "$work/beside.txt") red"
[ "$pass" -eq "$runs" ] && ! grep -q FAIL "$work/beside.txt"
