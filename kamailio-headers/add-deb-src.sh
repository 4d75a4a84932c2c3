#!/bin/sh
# Adds deb-src entries mirroring the system's deb entries, only if apt has
# none yet (needed by `apt-get source kamailio`). Run as root.
set -eu
if apt-get source --print-uris kamailio >/dev/null 2>&1; then
	exit 0
fi
out=/etc/apt/sources.list.d/topos-rs-deb-src.sources
: >"$out.tmp"
for f in /etc/apt/sources.list.d/*.sources; do
	[ -f "$f" ] || continue
	case "$f" in *topos-rs-deb-src*) continue ;; esac
	# deb822 stanzas: copy those of Types "deb" as "deb-src".
	awk 'BEGIN{RS="";ORS="\n\n"} /(^|\n)Types:[ \t]*deb([ \t]|\n|$)/ && /debian/ {
		sub(/Types:[ \t]*deb/, "Types: deb-src"); print }' "$f" >>"$out.tmp"
done
if [ -f /etc/apt/sources.list ]; then
	grep -E '^deb[[:space:]]' /etc/apt/sources.list | grep debian | sed 's/^deb/deb-src/' \
		>/etc/apt/sources.list.d/topos-rs-deb-src.list || true
fi
if [ -s "$out.tmp" ]; then mv "$out.tmp" "$out"; else rm -f "$out.tmp"; fi
apt-get update -qq
