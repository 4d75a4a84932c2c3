#!/bin/sh
# Usage: fetch-debian.sh SUITE DEST
#
# Fetches the kamailio source package of a Debian suite (e.g. trixie) into
# DEST (extracted Kamailio source tree), with apt state of its own under
# DEST.apt: the system's /etc/apt and /var/lib/apt are neither read for
# sources nor written. Runs as any user. The version fetched is the suite's
# candidate; it is written to DEST/.topos-rs-version.
#
#   MIRROR   Debian mirror (default http://deb.debian.org/debian)
#   KEYRING  keyring that signs the suite (default debian-archive-keyring)
set -eu
suite=${1:?usage: fetch-debian.sh SUITE DEST}
dest=${2:?usage: fetch-debian.sh SUITE DEST}
mirror=${MIRROR:-http://deb.debian.org/debian}
keyring=${KEYRING:-/usr/share/keyrings/debian-archive-keyring.gpg}

case "$dest" in /*) ;; *) dest="$(pwd)/$dest" ;; esac
state="$dest.apt"
stamp="$dest/.topos-rs-version"
mkdir -p "$state/lists/partial" "$state/cache/archives/partial" "$state/etc/preferences.d" "$state/dl"
printf 'deb-src [signed-by=%s] %s %s main\n' "$keyring" "$mirror" "$suite" >"$state/etc/sources.list"

apt_private() {
	cmd=$1
	shift
	"$cmd" -q \
		-o Dir::Etc::SourceList="$state/etc/sources.list" \
		-o Dir::Etc::SourceParts=/dev/null \
		-o Dir::Etc::Preferences="$state/etc/preferences" \
		-o Dir::Etc::PreferencesParts="$state/etc/preferences.d" \
		-o Dir::State::Lists="$state/lists" \
		-o Dir::Cache="$state/cache" \
		"$@"
}

if ! apt_private apt-get update >"$state/update.log" 2>&1; then
	if [ -f "$stamp" ]; then
		# Offline, say: the source fetched before is still the suite's.
		echo "fetch-debian.sh: cannot update the $suite lists; keeping kamailio $(cat "$stamp") in $dest" >&2
		exit 0
	fi
	cat "$state/update.log" >&2
	echo "fetch-debian.sh: apt-get update of $suite ($mirror) failed" >&2
	exit 1
fi
# "Version: x" of the kamailio source package in that suite.
version=$(apt_private apt-cache showsrc kamailio 2>/dev/null | sed -n 's/^Version: //p' | sort -V | tail -n1)
[ -n "$version" ] || {
	echo "fetch-debian.sh: $suite has no kamailio source package" >&2
	exit 1
}
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$version" ]; then
	echo "fetch-debian.sh: kamailio $version ($suite) already in $dest"
	exit 0
fi

cd "$state/dl"
rm -f ./*
# apt's exit status is not the verdict: trixie's .dsc lists an upstream
# signature file (.asc) the archive does not serve, and apt fails on it
# although the .dsc and the tarballs arrive. dpkg-source decides below.
apt_private apt-get source --download-only "kamailio=$version" >../source.log 2>&1 || true
dsc=$(ls ./kamailio_*.dsc 2>/dev/null | head -n1)
if [ -z "$dsc" ]; then
	cat ../source.log >&2
	echo "fetch-debian.sh: the kamailio $version source package did not arrive" >&2
	exit 1
fi
rm -rf "$dest"
if ! dpkg-source --no-check -x "$dsc" "$dest" >../extract.log 2>&1; then
	cat ../source.log ../extract.log >&2
	echo "fetch-debian.sh: cannot extract kamailio $version (files missing?)" >&2
	exit 1
fi
echo "$version" >"$stamp"
rm -f ./*
echo "fetch-debian.sh: kamailio $version ($suite) source in $dest"
