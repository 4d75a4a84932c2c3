#!/bin/sh
# Usage: root.sh ROOT [MIRROR]
#
# A Debian 13 (trixie) root made with debootstrap, with the distro's own
# kamailio binary package installed in it (cached: made once, then only
# brought up to date with apt inside the root). Also writes ROOT-kamailio,
# a wrapper that runs the root's /usr/sbin/kamailio (build.rs checks the
# module's version and flags against it: KAMAILIO_BIN). Run as root.
set -eu
root=${1:?usage: root.sh ROOT [MIRROR]}
mirror=${2:-http://deb.debian.org/debian}
case "$root" in /*) ;; *) root="$(pwd)/$root" ;; esac
command -v debootstrap >/dev/null || {
	echo "root.sh: debootstrap is required (apt-get install debootstrap)" >&2
	exit 1
}
if [ -f "$root/.topos-rs-root" ] && [ -x "$root/usr/sbin/kamailio" ]; then
	# The same suite as the source built against: take point releases.
	if chroot "$root" apt-get -qq update >/dev/null 2>&1; then
		DEBIAN_FRONTEND=noninteractive chroot "$root" apt-get -qq -y install kamailio >/dev/null
	else
		echo "root.sh: cannot update $root (offline?); keeping its kamailio" >&2
	fi
else
	rm -rf "$root.tmp"
	mkdir -p "$(dirname "$root")"
	echo "root.sh: debootstrap trixie into $root (about a minute)"
	debootstrap --variant=minbase --include=kamailio trixie "$root.tmp" "$mirror" \
		>"$root.debootstrap.log" 2>&1 || {
		tail -n 20 "$root.debootstrap.log" >&2
		echo "root.sh: debootstrap failed (log: $root.debootstrap.log)" >&2
		exit 1
	}
	rm -rf "$root"
	mv "$root.tmp" "$root"
	date -u >"$root/.topos-rs-root"
fi
printf '#!/bin/sh\nexec chroot %s /usr/sbin/kamailio "$@"\n' "$root" >"$root-kamailio"
chmod +x "$root-kamailio"
echo "root.sh: $root has kamailio $(chroot "$root" dpkg-query -W -f='${Version}' kamailio)"
