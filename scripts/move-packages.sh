#!/bin/sh
# move-packages.sh: the package layout of issue 18, as one repeatable step.
#
# The server's parts stay at the top level; a package that only one part
# uses lives under that part (the media path's pieces under rtpcore/, the
# SDP code under signal/, the cluster CA under cluster/); helpers several
# parts share and the test clients go under internal/.
#
# Run it from the repository's root. It moves what is still at its old
# place (git mv) and rewrites every import path and file reference to the
# old places, so it can be run again after merging a branch that still
# uses them (it then only rewrites). It ends with gofmt (imports are
# sorted again) and go build.
set -eu

module=github.com/hayate-sfu/hayate

# old:new, one package per line.
moves='
ice:rtpcore/ice
packetcache:rtpcore/packetcache
chanconn:rtpcore/chanconn
bwe:rtpcore/bwe
twcc:rtpcore/twcc
codecs:rtpcore/codecs
datachan:rtpcore/datachan
jsep:signal/jsep
clustercert:cluster/clustercert
sigclient:internal/sigclient
loadpeer:internal/loadpeer
ids:internal/ids
cert:internal/cert
zlibmsg:internal/zlibmsg
sdnotify:internal/sdnotify
'

[ -f go.mod ] && grep -q "^module $module\$" go.mod || { echo "run from the root of $module" >&2; exit 1; }

for m in $moves; do
	old=${m%%:*} new=${m#*:}
	if [ -d "$old" ] && [ -n "$(git ls-files "$old")" ]; then
		mkdir -p "$(dirname "$new")"
		if [ -d "$new" ]; then
			# Files a merge added at the old place join the moved package.
			for f in $(git ls-files "$old"); do
				mkdir -p "$new/$(dirname "${f#"$old"/}")"
				git mv "$f" "$new/${f#"$old"/}"
			done
		else
			git mv "$old" "$new"
		fi
		echo "moved $old -> $new"
	fi
done

# Files that name packages: Go sources (imports, comments), documents,
# scripts and configuration; not dependencies, quoted test data, nor the
# protocol notes of docs/spec/ (the paths there are other projects', such
# as galene's packetcache/).
files=$(git ls-files '*.go' '*.md' '*.mjs' '*.js' '*.sh' '*.conf' '*.html' '*.service' '*.yml' '*.yaml' Makefile |
	grep -v -e '/node_modules/' -e '/testdata/' -e '^docs/spec/' -e '^scripts/move-packages.sh$')

for m in $moves; do
	old=${m%%:*} new=${m#*:}
	# Import paths: the module path, then old, then a quote or a slash.
	# References in text: old/ (or ./old) not preceded by a path
	# character, so rtpcore/ice/ (already moved) and device/ are left
	# alone, and pion's module paths (ice/v4); a bare ./old (go test ./old)
	# too.
	OLD=$old NEW=$new MOD=$module perl -pi -e '
		BEGIN { ($o, $n, $m) = ($ENV{OLD}, $ENV{NEW}, $ENV{MOD}) }
		s{\Q$m\E/\Q$o\E(?=["/`])}{$m/$n}g;
		s{(?<![\w/.\-])(\./)?\Q$o\E/(?!v[0-9])}{$1$n/}g;
		s{(?<![\w/.\-])\./\Q$o\E(?![\w/\-])}{./$n}g;
	' $files
done

gofmt -w $(git ls-files '*.go')
go build ./...
git add -A -- $(for m in $moves; do echo "${m#*:}"; done) $files
