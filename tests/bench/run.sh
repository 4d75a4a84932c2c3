#!/usr/bin/env bash
# make bench: Kamailio CPU time per call, side by side, in one run:
#   plain         Kamailio record-routing, no hiding
#   native-topos  Kamailio's own topos + topos_redis (+ ndb_redis)
#   topos_rs-lmdb topos_rs, sealed tokens (the default), embedded store
#   topos_rs-redis topos_rs, sealed tokens, Redis
#   topos_rs-stored-lmdb, topos_rs-stored-redis  token_mode "stored"
#   topos_rs-before-lmdb  the module built in BENCH_BEFORE_DIR (e.g. the
#                 previous version's target/release), embedded store, to
#                 measure a change before and after in one run
# sipp caller and callee on 127.0.0.1; every call INVITE/100/180/200/ACK/BYE/200
# with three upstream Vias, an upstream Record-Route and a private Contact,
# and a downstream Record-Route in the replies. Each sipp side checks what it
# receives for the other side's addresses (a leak fails the call) wherever
# hiding is on. Prints a table, writes target/bench/results.csv and
# target/bench/cpu_per_call.png.
#
# Knobs (environment): BENCH_CALLS (per run, default 3000), BENCH_RATE
# (calls/s of the CPU runs, default 500), BENCH_REPS (default 5),
# BENCH_SWEEP (rates of the sweep, default "500 1000 2000 3000"),
# BENCH_SWEEP_SECONDS (length of each sweep step, default 4), BENCH_CONFIGS
# (which to run, default all but topos_rs-before-lmdb, which is added when
# BENCH_BEFORE_DIR is set), BENCH_KAMAILIO_ARGS (extra
# kamailio arguments for every configuration, e.g. "-x tlsf -X tlsf").
# Every process started here is stopped by PID (or its own process group).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT="$ROOT/target/bench"
CALLS=${BENCH_CALLS:-3000}
RATE=${BENCH_RATE:-500}
REPS=${BENCH_REPS:-5}
SWEEP=${BENCH_SWEEP-"500 1000 2000 3000"}
SWEEP_SECONDS=${BENCH_SWEEP_SECONDS:-4}
MODS=$(dirname "$(dpkg -L kamailio | grep '/modules/tm\.so$' | head -n1)")
ALL_CONFIGS="plain native-topos topos_rs-lmdb topos_rs-redis topos_rs-stored-lmdb topos_rs-stored-redis"
if [ -n "${BENCH_BEFORE_DIR:-}" ]; then
	ALL_CONFIGS="$ALL_CONFIGS topos_rs-before-lmdb"
fi
CONFIGS=${BENCH_CONFIGS:-$ALL_CONFIGS}

mkdir -p "$OUT"
WORK="$OUT/run-$(date +%s)-$$"
mkdir -p "$WORK"
# topos_rs runs without billing here: the other configurations do not bill.
bench_defines() {
	# Nor do they mark replies for tests (X-Topos-Reply).
	case $1 in topos_rs-*) echo "-A NO_BILLING -A NO_REPLY_MARK" ;; esac
	echo "${BENCH_KAMAILIO_ARGS:-}"
}

# shellcheck source=tests/bench/lib.sh
source "$ROOT/tests/bench/lib.sh"
track_cleanup

REDIS_PORT=$(free_port)
REDIS_PID=$(start_redis)

printf 'config;rep;calls_ok;calls_failed;kamailio_ms_per_call;redis_ms_per_call;redis_cmds_per_call\n' >"$OUT/runs.csv"
echo "CPU runs: $CALLS calls at $RATE calls/s, $REPS repetitions, configurations alternating"
# Each repetition starts one configuration further down the list: a
# configuration always run right after another (native topos leaves Redis
# busy expiring its keys) would carry that neighbour's noise in every run.
read -r -a CONFIG_LIST <<<"$CONFIGS"
for rep in $(seq "$REPS"); do
	shift_by=$(((rep - 1) % ${#CONFIG_LIST[@]}))
	for name in "${CONFIG_LIST[@]:shift_by}" "${CONFIG_LIST[@]:0:shift_by}"; do
		read -r kpid kport < <(start_kamailio "$name" $(bench_defines "$name"))
		dir="$WORK/$name-$rep"
		mkdir -p "$dir"
		k0=$(group_ns "$kpid")
		r0=$(proc_ns "$REDIS_PID")
		c0=$(redis_commands "$REDIS_PORT")
		read -r ok failed < <(sipp_run "$name" "$RATE" "$CALLS" "$kport" "$dir")
		sleep 6 # tm's wait timer: transactions freed, their work counted
		k1=$(group_ns "$kpid")
		r1=$(proc_ns "$REDIS_PID")
		c1=$(redis_commands "$REDIS_PORT")
		stop_kamailio "$kpid"
		# No keys left for Redis to expire while the next one runs.
		redis-cli -p "$REDIS_PORT" FLUSHALL >/dev/null
		awk -v n="$name" -v r="$rep" -v ok="$ok" -v f="$failed" -v k="$((k1 - k0))" \
			-v rd="$((r1 - r0))" -v c="$((c1 - c0))" 'BEGIN {
			d = (ok > 0 ? ok : 1);
			printf "%s;%d;%d;%d;%.4f;%.4f;%.2f\n", n, r, ok, f, k / 1e6 / d, rd / 1e6 / d, c / d
		}' >>"$OUT/runs.csv"
		tail -n1 "$OUT/runs.csv"
	done
done

echo "Rate sweep: $SWEEP calls/s, $SWEEP_SECONDS s each"
printf 'config;rate;calls_ok;calls_failed;kamailio_cpu_s;sipp_cpu_s\n' >"$OUT/sweep.csv"
for name in $CONFIGS; do
	for rate in $SWEEP; do
		read -r kpid kport < <(start_kamailio "$name" $(bench_defines "$name"))
		dir="$WORK/sweep-$name-$rate"
		mkdir -p "$dir"
		k0=$(group_ns "$kpid")
		read -r ok failed < <(sipp_run "$name" "$rate" "$((rate * SWEEP_SECONDS))" "$kport" "$dir")
		k1=$(group_ns "$kpid")
		stop_kamailio "$kpid"
		sipp_cpu=$(cat "$dir/uac.cpu" "$dir/uas.cpu" 2>/dev/null | awk '{ t += $1 + $2 } END { printf "%.1f", t }')
		kam_cpu=$(awk -v k="$((k1 - k0))" 'BEGIN { printf "%.1f", k / 1e9 }')
		echo "$name;$rate;$ok;$failed;$kam_cpu;$sipp_cpu" | tee -a "$OUT/sweep.csv"
	done
done

# Summary: medians over the repetitions per configuration (one disturbed
# run on a shared machine moves a median, not a mean, little), the spread
# of the Kamailio figure, ratios to plain, highest clean rate.
awk -F';' -v sweepfile="$OUT/sweep.csv" '
	function median(a, c0, m,    i, j, t, v) {
		for (i = 1; i <= m; i++) v[i] = a[c0, i];
		for (i = 2; i <= m; i++) { t = v[i]; for (j = i - 1; j >= 1 && v[j] > t; j--) v[j + 1] = v[j]; v[j + 1] = t; }
		lo = v[1]; hi = v[m];
		return (m % 2) ? v[(m + 1) / 2] : (v[m / 2] + v[m / 2 + 1]) / 2;
	}
	NR > 1 { i = ++n[$1]; ok[$1] += $3; fl[$1] += $4; k[$1, i] = $5; r[$1, i] = $6; c[$1, i] = $7 }
	END {
		while ((getline line < sweepfile) > 0) {
			split(line, f, ";");
			if (f[1] == "config") continue;
			if (f[4] == 0 && f[3] > 0 && f[2] > best[f[1]]) best[f[1]] = f[2];
		}
		norder = split("'"$ALL_CONFIGS"'", order, " ");
		base = n["plain"] ? median(k, "plain", n["plain"]) : 1;
		nat = n["native-topos"] ? median(k, "native-topos", n["native-topos"]) + median(r, "native-topos", n["native-topos"]) : 1;
		printf "%-21s %9s %7s %12s %15s %9s %11s %11s %9s %10s\n", "config", "calls_ok", "failed",
			"kam_ms/call", "kam_min-max", "x_plain", "redis_ms", "redis_cmds", "total_ms", "max_cps";
		print "config;calls_ok;calls_failed;kamailio_ms_per_call;kamailio_ms_min;kamailio_ms_max;ratio_to_plain;redis_ms_per_call;redis_cmds_per_call;total_ms_per_call;ratio_total_to_native_topos;max_clean_cps" > "'"$OUT"'/results.csv";
		for (i = 1; i <= norder; i++) {
			c0 = order[i]; m = n[c0];
			if (!m) continue;
			km = median(k, c0, m); kmin = lo; kmax = hi;
			rm = median(r, c0, m); cm = median(c, c0, m); tot = km + rm;
			printf "%-21s %9d %7d %12.4f %7.3f-%-7.3f %9.2f %11.4f %11.2f %9.4f %10s\n", c0, ok[c0], fl[c0], km,
				kmin, kmax, km / base, rm, cm, tot, (best[c0] ? best[c0] : "-");
			printf "%s;%d;%d;%.4f;%.4f;%.4f;%.3f;%.4f;%.2f;%.4f;%.3f;%s\n", c0, ok[c0], fl[c0], km, kmin, kmax,
				km / base, rm, cm, tot, tot / nat, (best[c0] ? best[c0] : 0) >> "'"$OUT"'/results.csv";
		}
	}' "$OUT/runs.csv"

if command -v gnuplot >/dev/null; then
	gnuplot <<EOF
set terminal pngcairo size 900,500 noenhanced
set output "$OUT/cpu_per_call.png"
set datafile separator ";"
set title "CPU per call (ms): Kamailio and Redis, at $RATE calls/s"
set style data histograms
set style histogram rowstacked
set style fill solid 0.8 border -1
set boxwidth 0.6
set ylabel "ms per call"
set key top left
plot "$OUT/results.csv" every ::1 using 4:xtic(1) title "Kamailio", "" every ::1 using 8 title "Redis"
EOF
	echo "chart: $OUT/cpu_per_call.png"
fi
echo "tables: $OUT/results.csv $OUT/runs.csv $OUT/sweep.csv"
