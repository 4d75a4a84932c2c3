#!/bin/sh
# Fetches the Kamailio source of the *installed* version (Debian source
# package) into kamailio-headers/src, where build.rs finds the headers.
# Nothing fetched here is committed (see .gitignore). The source of another
# Debian release's Kamailio: fetch-debian.sh (make test-kamailio6).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
dest="$here/src"
stamp="$dest/.topos-rs-version"

version=$(dpkg-query -W -f='${Version}' kamailio 2>/dev/null) || {
	echo "fetch.sh: kamailio is not installed; run 'make deps' first" >&2
	exit 1
}
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$version" ]; then
	exit 0
fi

# apt-get source needs deb-src entries; add them if the system has none.
if [ "$(id -u)" = 0 ]; then
	sh "$here/add-deb-src.sh"
fi

dl="$here/download"
rm -rf "$dl" "$dest"
mkdir -p "$dl"
cd "$dl"
# apt's exit status is not the verdict: a .dsc may list a file the archive
# does not serve (Debian 13's lists an upstream .asc), and apt then fails
# although the .dsc and the tarballs arrived. dpkg-source decides.
apt-get source --download-only "kamailio=$version" >/dev/null 2>apt-source.err || true
if ! ls ./kamailio_*.dsc >/dev/null 2>&1 ||
	! dpkg-source --no-check -x ./kamailio_*.dsc "$dest" >/dev/null 2>dpkg-source.err; then
	cat apt-source.err dpkg-source.err 2>/dev/null >&2
	echo "fetch.sh: cannot download the kamailio $version source package;" \
		"'make deps' adds the deb-src entry it needs" >&2
	exit 1
fi
echo "$version" >"$stamp"
cd "$here"
rm -rf "$dl"
echo "fetch.sh: kamailio $version source in $dest"
