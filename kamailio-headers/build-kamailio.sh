#!/bin/sh
# Usage: build-kamailio.sh TREE OUT
#
# Builds Kamailio from a Debian source tree (fetch-debian.sh) the way Debian
# configures it (`debian/rules configure-stamp`, i.e. `make cfg` with the
# package's options), then copies the server, kamcmd and the modules the
# tests load into OUT/sbin and OUT/modules. topos_rs is then built against
# TREE (KAMAILIO_SRC=TREE): the same src/config.mak serves both.
# Nothing is installed system-wide. Skips all work when OUT is up to date.
#
#   KAMAILIO_BUILD_MODULES  modules to build (default: those the tests load)
set -eu
tree=${1:?usage: build-kamailio.sh TREE OUT}
out=${2:?usage: build-kamailio.sh TREE OUT}
modules=${KAMAILIO_BUILD_MODULES:-tm sl textops pv rr siputils maxfwd xlog tmx kex corex ctl app_lua dialog tls nathelper uac acc counters statistics xhttp xhttp_prom websocket rtpengine}
jobs=$(nproc 2>/dev/null || echo 2)

version=$(cat "$tree/.topos-rs-version")
stamp="$out/.topos-rs-built"
want="$version: $modules"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$out/sbin/kamailio" ]; then
	echo "build-kamailio.sh: kamailio $version already built in $out"
	exit 0
fi

cd "$tree"
if [ ! -f configure-stamp ] || [ ! -f src/config.mak ]; then
	make -f debian/rules configure-stamp >configure.log 2>&1 || {
		tail -n 30 configure.log >&2
		exit 1
	}
fi
echo "build-kamailio.sh: building kamailio $version (core, kamcmd, $modules)"
make -j"$jobs" -C src quiet=silent kamailio >build.log 2>&1 || {
	tail -n 30 build.log >&2
	exit 1
}
make -C utils/kamcmd quiet=silent >>build.log 2>&1 || {
	tail -n 30 build.log >&2
	exit 1
}
for m in $modules; do
	make -j"$jobs" -C "src/modules/$m" quiet=silent >>build.log 2>&1 || {
		tail -n 30 build.log >&2
		echo "build-kamailio.sh: module $m failed" >&2
		exit 1
	}
done

rm -rf "$out/sbin" "$out/modules"
mkdir -p "$out/sbin" "$out/modules"
cp src/kamailio utils/kamcmd/kamcmd "$out/sbin/"
for m in $modules; do
	cp "src/modules/$m/$m.so" "$out/modules/"
done
echo "$want" >"$stamp"
"$out/sbin/kamailio" -v | head -n1
