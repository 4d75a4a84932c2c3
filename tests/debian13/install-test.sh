#!/usr/bin/env bash
# Usage: install-test.sh ROOT DEB
#
# Install test of the Debian 13 package in a Debian 13 root (root.sh), where
# the distro's kamailio package is installed: `dpkg -i` of ours, its
# Depends against the root's kamailio, `kamailio -c` on a config that loads
# the module by name only (default module path), then a whole call
# (INVITE/180/200/ACK/BYE) through the root's kamailio running the
# package's example config, with sipp on this host as caller and callee,
# each failing the call if it sees the other side's addresses, and the
# call's billing line in the log. The package is removed again at the end.
# Run as root. Every process started here is stopped by PID.
set -euo pipefail
TROOT=${1:?usage: install-test.sh ROOT DEB}
DEB=${2:?usage: install-test.sh ROOT DEB}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PKG=kamailio-topos-rs-modules
DOC=/usr/share/doc/$PKG
# shellcheck source=tests/bench/lib.sh
source "$ROOT/tests/bench/lib.sh" # free_port, scenario

in_root() { chroot "$TROOT" "$@"; }
fail() {
	echo "install-test.sh: FAILED: $*" >&2
	exit 1
}

WORK_IN=/tmp/topos-rs-install-test
WORK=$TROOT$WORK_IN
rm -rf "$WORK"
mkdir -p "$WORK/run"
KPID=
cleanup() {
	[ -n "$KPID" ] && { kill -TERM -- "-$KPID" 2>/dev/null || true; sleep 0.5; kill -KILL -- "-$KPID" 2>/dev/null || true; }
	in_root dpkg -r "$PKG" >/dev/null 2>&1 || true
}
trap cleanup EXIT

kver=$(in_root dpkg-query -W -f='${Version}' kamailio)
echo "install-test.sh: Debian $(cat "$TROOT/etc/debian_version") root, kamailio $kver"
cp "$DEB" "$WORK/"
deb_in=$WORK_IN/$(basename "$DEB")
depends=$(in_root dpkg-deb -f "$deb_in" Depends)
[ "$depends" = "kamailio (= $kver)" ] || fail "Depends is '$depends', the root has kamailio $kver"
in_root dpkg -i "$deb_in" >"$WORK/dpkg.log" 2>&1 || { cat "$WORK/dpkg.log"; fail "dpkg -i"; }
so=$(in_root dpkg -L "$PKG" | grep '/topos_rs\.so$')
in_root dpkg -L kamailio | grep -qx "$(dirname "$so")/tm.so" || fail "$so is not in kamailio's module directory"
echo "install-test.sh: dpkg -i ok, $so"

printf '#!KAMAILIO\nloadmodule "topos_rs.so"\nrequest_route { drop; }\n' >"$WORK/check.cfg"
out=$(in_root kamailio -c -f "$WORK_IN/check.cfg" 2>&1) || { echo "$out"; fail "kamailio -c"; }
grep -q "config file ok" <<<"$out" || { echo "$out"; fail "kamailio -c said no 'config file ok'"; }
echo "install-test.sh: kamailio -c with loadmodule \"topos_rs.so\": config file ok"

# A call through the root's kamailio on the packaged example config.
port=$(free_port)
setsid chroot "$TROOT" kamailio -DD -E -f "$DOC/cfg-examples/kamailio.cfg" -Y "$WORK_IN/run" \
	-m 64 -M 8 -A "LISTEN=udp:127.0.0.1:$port" >"$WORK/kamailio.log" 2>&1 &
KPID=$!
for _ in $(seq 100); do
	ss -Hlnu "sport = :$port" | grep -q . && break
	kill -0 "$KPID" 2>/dev/null || { cat "$WORK/kamailio.log"; fail "kamailio did not start"; }
	sleep 0.1
done
sleep 1 # the worker processes
uas_port=$(free_port)
uac_port=$(free_port)
uac_leak="127\\\\.0\\\\.0\\\\.1:$uas_port|downstream-proxy"
uas_leak="192\\\\.168\\\\.1\\\\.100|10\\\\.10\\\\.10\\\\.1|222\\\\.211\\\\.75\\\\.75|127\\\\.0\\\\.0\\\\.1:$uac_port"
scenario "$ROOT/tests/bench/uac.xml" "$WORK/uac.xml" "$uas_port" "$uac_leak" "$uas_leak"
scenario "$ROOT/tests/bench/uas.xml" "$WORK/uas.xml" "$uas_port" "$uac_leak" "$uas_leak"
calls=3
timeout 40 sipp -sf "$WORK/uas.xml" -i 127.0.0.1 -p "$uas_port" -m "$calls" -nostdin -timeout 30s \
	-trace_err -error_file "$WORK/uas_errors.log" >"$WORK/uas.out" 2>&1 &
uas=$!
sleep 0.3
uac_rc=0
timeout 40 sipp -sf "$WORK/uac.xml" "127.0.0.1:$port" -i 127.0.0.1 -p "$uac_port" -m "$calls" -r 1 \
	-nostdin -timeout 30s -trace_err -error_file "$WORK/uac_errors.log" >"$WORK/uac.out" 2>&1 || uac_rc=$?
wait "$uas" 2>/dev/null || true
sleep 0.5
if [ "$uac_rc" != 0 ]; then
	cat "$WORK/uac_errors.log" "$WORK/uas_errors.log" 2>/dev/null | head -n 40
	tail -n 30 "$WORK/kamailio.log"
	fail "sipp: not every call succeeded through the root's kamailio (exit $uac_rc)"
fi
billed=$(grep -c 'CALL BILLING - ' "$WORK/kamailio.log" || true)
[ "$billed" = "$calls" ] || { tail -n 30 "$WORK/kamailio.log"; fail "$billed billing lines for $calls calls"; }
grep 'CALL BILLING - ' "$WORK/kamailio.log" | head -n1
echo "install-test.sh: $calls calls through kamailio $kver with $PKG: hidden both ways, billed. PASS"
