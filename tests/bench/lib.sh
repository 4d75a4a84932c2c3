# Shell helpers shared by make bench (tests/bench/run.sh) and make soak
# (tests/soak/run.sh). The caller sets ROOT (repository), WORK (its scratch
# directory), MODS (Kamailio's module directory) and, for configurations on
# Redis, REDIS_PORT; it calls track_cleanup once. Every process started here
# runs in its own process group and is stopped by PID.

track_cleanup() {
	: >"$WORK/pids"
	# Kamailio's runtime directory (-Y, which holds the LMDB store) goes on
	# tmpfs, as Debian's /run/kamailio is; BENCH_RUNTIME_DIR overrides.
	local base=${BENCH_RUNTIME_DIR:-}
	if [ -z "$base" ]; then
		base=$WORK
		[ "$(stat -f -c %T /dev/shm 2>/dev/null)" = tmpfs ] && base=/dev/shm
	fi
	RUNTIME="$base/topos-rs-runtime-$$-$(date +%s%N)"
	mkdir -p "$RUNTIME"
	trap cleanup EXIT
}

track_pid() { echo "$1" >>"$WORK/pids"; }

cleanup() {
	local p
	for p in $(cat "$WORK/pids" 2>/dev/null); do kill -TERM -- "-$p" 2>/dev/null || kill -TERM "$p" 2>/dev/null || true; done
	sleep 0.5
	for p in $(cat "$WORK/pids" 2>/dev/null); do kill -KILL -- "-$p" 2>/dev/null || kill -KILL "$p" 2>/dev/null || true; done
	[ -n "${RUNTIME:-}" ] && rm -rf "$RUNTIME"
}

free_port() { # a loopback port nothing listens on (UDP and TCP)
	local p
	while :; do
		p=$(shuf -i 20000-60000 -n 1)
		if ! ss -Hlnu "sport = :$p" | grep -q . && ! ss -Hlnt "sport = :$p" | grep -q .; then
			echo "$p"
			return
		fi
	done
}

# CPU time in nanoseconds of every thread of process $1, from
# /proc/<pid>/task/*/schedstat (the scheduler's exact run time). utime/stime
# in /proc/<pid>/stat are charged per clock tick (10 ms), a sample that
# wobbles by several percent over a run of a few CPU seconds. A process
# that has exited counts 0.
proc_ns() {
	{ cat /proc/"$1"/task/*/schedstat 2>/dev/null || true; } | awk '{ t += $1 } END { printf "%.0f\n", t }'
}

# The same, summed over every process in process group $1. A process may
# exit between the glob and the read: cat skips it.
group_ns() {
	local p
	for p in $({ cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk -v g="$1" '{
		s = $0; sub(/^[^)]*\) /, "", s); split(s, f, " ");
		if (f[3] == g) print $1;
	}'); do
		proc_ns "$p"
	done | awk '{ t += $1 } END { printf "%.0f\n", t }'
}

redis_commands() {
	redis-cli -p "$1" INFO commandstats | tr -d '\r' |
		awk -F'[=,]' '/^cmdstat_/ && !/^cmdstat_(info|config|ping|client|hello|select)/ { n += $2 } END { print n + 0 }'
}

start_redis() { # prints the pid; REDIS_PORT must be set
	setsid redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
		--dir "$WORK" >"$WORK/redis.log" 2>&1 &
	local pid=$!
	track_pid "$pid"
	for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" PING >/dev/null 2>&1 && break; sleep 0.1; done
	echo "$pid"
}

start_kamailio() { # $1 config name, then extra kamailio arguments; prints "pid port"
	local name=$1 port dir
	shift
	port=$(free_port)
	dir="$WORK/k-$name-$port"
	mkdir -p "$dir" "$RUNTIME/k-$name-$port"
	local moddir="$ROOT/target/release"
	if [ "$name" = topos_rs-before-lmdb ]; then moddir=$BENCH_BEFORE_DIR; fi
	local args=(-DD -E -m 1024 -M 16 -Y "$RUNTIME/k-$name-$port" -L "$moddir:$MODS"
		-A "LISTEN=udp:127.0.0.1:$port" -A SHM_PREFAULT)
	case $name in
	plain) args+=(-f "$ROOT/tests/cfg/routing.cfg" -A WITHOUT_TOPOS) ;;
	native-topos) args+=(-f "$ROOT/tests/bench/native-topos.cfg"
		-A "REDIS_SERVER=\"name=srv8;addr=127.0.0.1;port=$REDIS_PORT;db=0\"") ;;
	topos_rs-lmdb) args+=(-f "$ROOT/tests/cfg/routing.cfg") ;;
	topos_rs-redis) args+=(-f "$ROOT/tests/cfg/routing.cfg"
		-A "STORAGE=\"redis://127.0.0.1:$REDIS_PORT/0\"") ;;
	topos_rs-stored-lmdb) args+=(-f "$ROOT/tests/cfg/routing.cfg" -A 'TOKEN_MODE="stored"') ;;
	topos_rs-stored-redis) args+=(-f "$ROOT/tests/cfg/routing.cfg" -A 'TOKEN_MODE="stored"'
		-A "STORAGE=\"redis://127.0.0.1:$REDIS_PORT/0\"") ;;
	topos_rs-before-lmdb) args+=(-f "$ROOT/tests/cfg/routing.cfg") ;;
	esac
	setsid kamailio "${args[@]}" "$@" >"$dir/kamailio.log" 2>&1 &
	local pid=$!
	track_pid "$pid"
	sleep 1
	wait_idle "$pid"
	echo "$pid $port"
}

# Waits (at most 10 s) until process group $1 is idle: start-up work
# (touching 1 GB of shared memory, forking the workers) must not count
# in the first measurement.
wait_idle() {
	local a b
	a=$(group_ns "$1")
	for _ in $(seq 50); do
		sleep 0.2
		b=$(group_ns "$1")
		[ $((b - a)) -lt 4000000 ] && return # under 2% of a core
		a=$b
	done
}

stop_kamailio() {
	kill -TERM "$1" 2>/dev/null || true
	for _ in $(seq 50); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
	kill -KILL -- "-$1" 2>/dev/null || true
}

scenario() { # $1 template, $2 output, $3 uas port, $4 uac leak regex, $5 uas leak regex, $6 kamailio port
	sed -e "s/@UASPORT@/$3/g" -e "s/@UACLEAK@/$4/g" -e "s/@UASLEAK@/$5/g" -e "s/@KPORT@/$6/g" "$1" >"$2"
}

# One sipp run: $1 config, $2 rate, $3 calls, $4 kamailio port, $5 run dir.
# Prints "successful failed".
sipp_run() {
	local name=$1 rate=$2 calls=$3 kport=$4 dir=$5
	local uas_port uac_port uac_leak uas_leak
	uas_port=$(free_port)
	uac_port=$(free_port)
	if [ "$name" = plain ]; then
		uac_leak='NEVER-MATCHES-[x]' uas_leak='NEVER-MATCHES-[x]'
	else
		uac_leak="127\\\\.0\\\\.0\\\\.1:$uas_port|downstream-proxy"
		uas_leak="192\\\\.168\\\\.1\\\\.100|10\\\\.10\\\\.10\\\\.1|222\\\\.211\\\\.75\\\\.75|127\\\\.0\\\\.0\\\\.1:$uac_port"
	fi
	scenario "$ROOT/tests/bench/uac.xml" "$dir/uac.xml" "$uas_port" "$uac_leak" "$uas_leak" "$kport"
	if [ "$name" = native-topos ]; then
		# Kamailio's topos shows the caller no Record-Route entry to
		# follow: the in-dialog requests go to Kamailio's address.
		sed -i -e 's/Route: \[\$krr\]/Route: <sip:[remote_ip]:[remote_port];lr>/' \
			-e 's/check_it="true" assign_to="krr"/check_it="false" assign_to="krr"/' "$dir/uac.xml"
	fi
	scenario "$ROOT/tests/bench/uas.xml" "$dir/uas.xml" "$uas_port" "$uac_leak" "$uas_leak" "$kport"
	local limit=$((calls / rate + 30))
	# CPU of each sipp (user+sys seconds) goes to *.cpu: where the 2 cores go.
	/usr/bin/time -f "%U %S" -o "$dir/uas.cpu" timeout "$((limit + 10))" sipp -sf "$dir/uas.xml" -i 127.0.0.1 -p "$uas_port" -m "$calls" \
		-nostdin -timeout "${limit}s" -trace_err -error_file "$dir/uas_errors.log" \
		>"$dir/uas.out" 2>&1 &
	local uas=$!
	sleep 0.3
	/usr/bin/time -f "%U %S" -o "$dir/uac.cpu" timeout "$((limit + 10))" sipp -sf "$dir/uac.xml" "127.0.0.1:$kport" -i 127.0.0.1 -p "$uac_port" \
		-r "$rate" -m "$calls" -l 20000 -nostdin -timeout "${limit}s" -trace_stat -stf "$dir/uac_stat.csv" \
		-trace_err -error_file "$dir/uac_errors.log" >"$dir/uac.out" 2>&1 || true
	wait "$uas" 2>/dev/null || true
	# The last line of the statistics file: columns SuccessfulCall(C), FailedCall(C).
	awk -F';' 'NR == 1 { for (i = 1; i <= NF; i++) { if ($i == "SuccessfulCall(C)") s = i; if ($i == "FailedCall(C)") f = i } }
		END { print $s + 0, $f + 0 }' "$dir/uac_stat.csv"
}

