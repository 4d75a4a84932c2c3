#!/usr/bin/env bash
# make soak: SOAK_CALLS calls (default 100,000) through Kamailio with
# topos_rs and billing, on LMDB and then on Redis, with the sipp caller and
# callee of make bench (leak checks on). Memory is sampled with no call in
# flight (tm's wait timer settled) after a warm-up (5% of the calls), at
# half and at the end:
#   pkg   kamcmd pkg.stats, real_used summed over every Kamailio process
#   shm   kamcmd core.shmmem real_used
#   anon  private anonymous memory of every Kamailio process (Anonymous in
#         /proc/PID/smaps_rollup): pkg and the Rust heap (which is not in
#         pkg); neither shm nor the LMDB file
# It fails if any of them grows by more than SOAK_GROWTH_KIB (default 512)
# from half to the end, if a bill is missing, or if the store still holds
# a record (topos_rs.records; on Redis also a key scan) once the grace time
# after the last BYE and an LMDB sweep have passed. Writes
# target/soak/memory.csv.
#
# Knobs (environment): SOAK_CALLS, SOAK_RATE (calls/s, default 500),
# SOAK_BACKENDS (default "lmdb redis"), SOAK_GROWTH_KIB.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT="$ROOT/target/soak"
CALLS=${SOAK_CALLS:-100000}
RATE=${SOAK_RATE:-500}
BACKENDS=${SOAK_BACKENDS:-"lmdb redis"}
GROWTH_KIB=${SOAK_GROWTH_KIB:-512}
MODS=$(dirname "$(dpkg -L kamailio | grep '/modules/tm\.so$' | head -n1)")
# tm's wait timer (5 s) plus margin: every transaction of a phase freed.
SETTLE=7
# The grace time after a BYE (32 s) plus one LMDB sweep period (10 s).
GRACE=45

mkdir -p "$OUT"
WORK="$OUT/run-$(date +%s)-$$"
mkdir -p "$WORK"
# shellcheck source=tests/bench/lib.sh
source "$ROOT/tests/bench/lib.sh"
track_cleanup

kam() { kamcmd -s "unix:$CTL" "$@"; }

# "pkg_kib shm_kib anon_kib" of the running Kamailio (process group $1).
sample_memory() {
	local pkg shm anon
	pkg=$(kam pkg.stats | awk '$1 == "real_used:" { t += $2 } END { printf "%d", t / 1024 }')
	shm=$(kam core.shmmem | awk '$1 == "real_used:" { printf "%d", $2 / 1024 }')
	anon=$(for p in $(pgrep -g "$1"); do
		awk '/^Anonymous:/ { print $2 }' "/proc/$p/smaps_rollup" 2>/dev/null
	done | awk '{ t += $1 } END { print t + 0 }')
	echo "$pkg $shm $anon"
}

# Calls of one phase; prints "successful failed".
phase() { # $1 backend, $2 phase name, $3 calls
	local dir="$WORK/$1-$2"
	mkdir -p "$dir"
	sipp_run "topos_rs-$1" "$RATE" "$3" "$KPORT" "$dir"
}

printf 'backend;point;calls_done;pkg_kib;shm_kib;anon_kib\n' >"$OUT/memory.csv"
status=0
warm=$((CALLS / 20))
half=$((CALLS / 2))
for backend in $BACKENDS; do
	CTL="$WORK/ctl-$backend.sock"
	extra=(-A "CTL_SOCKET=\"unix:$CTL\"")
	if [ "$backend" = redis ]; then
		REDIS_PORT=$(free_port)
		REDIS_PID=$(start_redis)
	fi
	read -r KPID KPORT < <(start_kamailio "topos_rs-$backend" "${extra[@]}")
	echo "== $backend: $CALLS calls at $RATE calls/s (Kamailio pid $KPID)"
	done_calls=0 ok_total=0 failed_total=0
	for point in start middle end; do
		case $point in
		start) n=$warm ;;
		middle) n=$((half - warm)) ;;
		end) n=$((CALLS - half)) ;;
		esac
		read -r ok failed < <(phase "$backend" "$point" "$n")
		done_calls=$((done_calls + n))
		ok_total=$((ok_total + ok))
		failed_total=$((failed_total + failed))
		sleep "$SETTLE"
		read -r pkg shm anon < <(sample_memory "$KPID")
		echo "$backend;$point;$done_calls;$pkg;$shm;$anon" | tee -a "$OUT/memory.csv"
	done
	bills=$(grep -c 'CALL BILLING - ' "$WORK/k-topos_rs-$backend-$KPORT/kamailio.log" || true)
	echo "$backend: sipp $ok_total successful, $failed_total failed; $bills calls billed"
	if [ "$bills" -lt "$ok_total" ]; then
		echo "FAIL $backend: $ok_total calls completed but only $bills billed"
		status=1
	fi
	awk -F';' -v b="$backend" -v lim="$GROWTH_KIB" '
		$1 == b && $2 == "middle" { p = $4; s = $5; h = $6 }
		$1 == b && $2 == "end" {
			printf "%s growth from half to end: pkg %+d KiB, shm %+d KiB, anon %+d KiB\n", b, $4 - p, $5 - s, $6 - h;
			if ($4 - p > lim || $5 - s > lim || $6 - h > lim) { print "FAIL " b ": memory grows"; exit 1 }
		}' "$OUT/memory.csv" || status=1

	echo "$backend: waiting ${GRACE}s (grace time after the last BYE, one sweep)"
	sleep "$GRACE"
	records=$(kam topos_rs.records)
	dialogs=$(awk '$1 == "dialogs:" { print $2 }' <<<"$records")
	open_bills=$(awk '$1 == "bills:" { print $2 }' <<<"$records")
	echo "$backend: store after grace: $dialogs dialog records, $open_bills open bills"
	if [ "$dialogs" != 0 ] || [ "$open_bills" != 0 ]; then
		echo "FAIL $backend: records of finished calls are still stored"
		status=1
	fi
	if [ "$backend" = redis ]; then
		keys=$(redis-cli -p "$REDIS_PORT" --scan --pattern 'topos_rs:*' | wc -l)
		echo "redis: $keys topos_rs keys left"
		[ "$keys" = 0 ] || status=1
	fi
	stop_kamailio "$KPID"
done
echo "memory samples: $OUT/memory.csv"
[ "$status" = 0 ] && echo "soak: PASS" || echo "soak: FAIL"
exit "$status"
