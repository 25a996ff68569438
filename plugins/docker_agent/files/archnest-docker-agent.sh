#!/usr/bin/env bash
# archnest-docker-agent: push a snapshot of this host's Docker containers to an
# ArchNest server. Outbound HTTPS only; nothing listens, nothing is executed on
# behalf of the server. See docs/docker-agent-monitoring.md.
#
# Needs: bash, curl, jq, the docker CLI (talking to the local engine, or to
# whatever DOCKER_HOST points at).
set -euo pipefail

readonly AGENT_VERSION="1.0.0"
readonly PAYLOAD_SCHEMA=1
readonly PROG="archnest-docker-agent"

# ---------------------------------------------------------------------------
# Masking rules: the ONE place they live in this script. They must stay equal
# to the server's (archnest.mask_env + the plugin's URL rule): an env var whose
# upper-cased NAME contains one of these fragments has its value replaced by
# "****", and so does any value that embeds credentials in a URL
# (scheme://user:pass@host). Masking happens here, before the payload exists,
# so a raw secret never leaves the host.
readonly SECRET_NAME_PARTS='["PASSWORD","PASSWD","PASS","SECRET","TOKEN","KEY","CREDENTIAL","CRED","AUTH","PRIVATE","CERT","SIGNATURE","SALT","SESSION","COOKIE","DSN","CONNECTION_STRING","APIKEY"]'
readonly URL_CREDENTIALS_RE='[A-Za-z][A-Za-z0-9+.-]*://[^/?#@[:space:]]*:[^/?#@[:space:]]*@'
readonly MASK='****'
# ---------------------------------------------------------------------------

usage() {
	cat <<EOF
Usage: $PROG [--once | --dry-run] [--env-file FILE] [--pid-file FILE]
       $PROG --install [--no-start] | --uninstall | --help

Collects docker ps -a / inspect / stats / version and host facts, masks
secret-looking environment values, and POSTs one JSON snapshot to
\$ARCHNEST_URL/api/agents/docker/report with the agent bearer token.

  --once      send one report and exit (non-zero when it was not accepted)
  --dry-run   print the payload to stdout and exit; sends nothing, needs no token
  --help      this text
  (default)   loop: one report every \$ARCHNEST_AGENT_INTERVAL seconds
  --env-file FILE  read the settings below from FILE (KEY=VALUE lines, the
              installed /etc/archnest/docker-agent.env); the file is parsed,
              never executed, and only the variables below are accepted
  --pid-file FILE  (loop) write this process's id to FILE while it runs

  --install   install this script, its settings (the variables below, taken
              from the environment or --env-file; written mode 0600) and its
              systemd unit (downloaded from \$ARCHNEST_URL), then start it:
              with systemd when it runs, otherwise as a detached loop (pid file
              under run/). ARCHNEST_INSTALL_ROOT installs under a prefix
              (default: /); --no-start only writes the files.
  --uninstall stop the agent and remove what --install wrote

Environment:
  ARCHNEST_URL               server base URL, e.g. https://archnest.example.org
  ARCHNEST_AGENT_TOKEN       the agent token configured on the server
  ARCHNEST_AGENT_HOSTNAME    name reported for this host (default: hostname)
  ARCHNEST_AGENT_INTERVAL    seconds between reports in loop mode (default 30)
  ARCHNEST_AGENT_RETRIES     retries of a failed send, with backoff (default 4)
  ARCHNEST_AGENT_TIMEOUT     seconds for one HTTP request (default 20)
  ARCHNEST_AGENT_CACERT      optional CA bundle file for the server's TLS cert
  ARCHNEST_AGENT_DOCKER_TIMEOUT  seconds for one docker command (default 60)
  DOCKER_HOST                which engine to read (default: the local socket)
  ARCHNEST_INSTALL_ROOT      (--install/--uninstall) prefix to install under

Exit status: 0 ok, 2 usage or missing dependency, 3 the server refused the
report (400/401/403/413/503), 4 the server could not be reached after
retries, 5 docker could not be queried, 6 the installation failed.
EOF
}

log() { printf '%s %s: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$PROG" "$*" >&2; }
die() {
	local code=$1
	shift
	printf '%s: error: %s\n' "$PROG" "$*" >&2
	exit "$code"
}

require_tools() {
	local tool missing=()
	for tool in "$@"; do
		command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
	done
	if ((${#missing[@]})); then
		die 2 "required command(s) not found in PATH: ${missing[*]} (install them: this agent needs bash, curl, jq and the docker CLI)"
	fi
}

# Run a docker command with an upper bound on its duration when `timeout` exists,
# so a wedged engine cannot hang the agent forever.
docker_cmd() {
	if command -v timeout >/dev/null 2>&1; then
		timeout "${ARCHNEST_AGENT_DOCKER_TIMEOUT:-60}" docker "$@"
	else
		docker "$@"
	fi
}

host_facts_json() {
	local os_name="unknown" cpus mem_kb
	if [[ -r /etc/os-release ]]; then
		# shellcheck disable=SC1091 # sourced in a subshell only for PRETTY_NAME
		os_name=$(. /etc/os-release && printf '%s' "${PRETTY_NAME:-${NAME:-unknown}}")
	fi
	cpus=$(getconf _NPROCESSORS_ONLN 2>/dev/null || nproc 2>/dev/null || echo 0)
	mem_kb=$(awk '/^MemTotal:/ {print $2; exit}' /proc/meminfo 2>/dev/null || echo 0)
	jq -n --arg hostname "$(uname -n)" --arg kernel "$(uname -r)" --arg os "$os_name" \
		--arg arch "$(uname -m)" --argjson cpus "${cpus:-0}" --argjson mem_kb "${mem_kb:-0}" \
		'{hostname: $hostname, kernel: $kernel, os: $os, arch: $arch,
		  cpus: $cpus, mem_total_bytes: ($mem_kb * 1024)}'
}

# Writes the payload to the file named by $1. Returns 5 when docker fails.
build_payload() {
	local out=$1 ids
	local inspect_f="$WORK_DIR/inspect.json" stats_f="$WORK_DIR/stats.jsonl"
	local version_f="$WORK_DIR/version.json" facts_f="$WORK_DIR/facts.json"

	if ! ids=$(docker_cmd ps -a -q --no-trunc); then
		log "docker ps failed (is the engine running, and may this user use it?)"
		return 5
	fi
	if [[ -n $ids ]]; then
		# One inspect call for all containers. A container removed between ps and
		# inspect makes docker exit 1 but still print the others: keep that output
		# as long as it is a JSON array.
		# shellcheck disable=SC2086 # ids are hex words, splitting is intended
		docker_cmd inspect $ids >"$inspect_f" 2>/dev/null || true
		jq -e 'type == "array"' "$inspect_f" >/dev/null 2>&1 || {
			log "docker inspect returned no usable JSON"
			return 5
		}
		# Only running containers are sampled (docker stats without -a).
		docker_cmd stats --no-stream --no-trunc --format '{{json .}}' >"$stats_f" 2>/dev/null || : >"$stats_f"
	else
		echo '[]' >"$inspect_f"
		: >"$stats_f"
	fi
	docker_cmd version --format '{{json .}}' >"$version_f" 2>/dev/null || echo '{}' >"$version_f"
	jq -e 'type == "object"' "$version_f" >/dev/null 2>&1 || echo '{}' >"$version_f"
	host_facts_json >"$facts_f"

	jq -n \
		--argjson schema "$PAYLOAD_SCHEMA" \
		--arg agent_version "$AGENT_VERSION" \
		--arg host "$REPORT_HOST" \
		--arg reported_at "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
		--argjson secret_parts "$SECRET_NAME_PARTS" \
		--arg url_re "$URL_CREDENTIALS_RE" \
		--arg mask "$MASK" \
		--slurpfile inspect "$inspect_f" \
		--slurpfile stats "$stats_f" \
		--slurpfile version "$version_f" \
		--slurpfile facts "$facts_f" \
		"$PAYLOAD_JQ" >"$out"
}

# The jq program that shapes the payload (schema 1). Kept as data so the
# masking and unit parsing sit next to each other and are easy to review.
read -r -d '' PAYLOAD_JQ <<'JQ' || true
def secret_name: ascii_upcase as $n | any($secret_parts[]; . as $p | $n | contains($p));
def mask_entry:
  (index("=")) as $i
  | if $i == null then .
    else .[:$i] as $name | .[$i+1:] as $value
      | if ($name | secret_name) or ($value | test($url_re)) then "\($name)=\($mask)"
        else . end
    end;
# "1.5MiB" / "2.3kB" / "0B" -> bytes (docker mixes binary and decimal units).
def to_bytes:
  ({"b":1,"":1,"kb":1e3,"k":1e3,"mb":1e6,"gb":1e9,"tb":1e12,"pb":1e15,
    "kib":1024,"mib":1048576,"gib":1073741824,"tib":1099511627776,"pib":1125899906842624}) as $u
  | (capture("^\\s*(?<n>[0-9]+(\\.[0-9]+)?)\\s*(?<u>[A-Za-z]*)\\s*$") // null) as $m
  | if $m == null or ($u[$m.u | ascii_downcase] == null) then null
    else ($m.n | tonumber) * $u[$m.u | ascii_downcase] | floor end;
def pair: (. // "") | split(" / ") | map(to_bytes) | if length == 2 then . else [null, null] end;
def num_or_null: (. // "") | rtrimstr("%") | (tonumber? // null);
def trim_container:
  {
    Id, Name, Created, Image, RestartCount,
    Config: {
      Image: .Config.Image, Cmd: .Config.Cmd, Entrypoint: .Config.Entrypoint,
      Labels: (.Config.Labels // {}), User: .Config.User,
      Env: ((.Config.Env // []) | map(mask_entry))
    },
    # Health.Log is dropped: it carries probe output, which may hold anything.
    State: (.State | del(.Health) + (if .Health then {Health: {Status: .Health.Status, FailingStreak: .Health.FailingStreak}} else {} end)),
    HostConfig: {RestartPolicy: .HostConfig.RestartPolicy, NetworkMode: .HostConfig.NetworkMode},
    NetworkSettings: {
      Ports: (.NetworkSettings.Ports // {}),
      Networks: ((.NetworkSettings.Networks // {}) | map_values({IPAddress, MacAddress, Gateway}))
    },
    Mounts: ((.Mounts // []) | map({Type, Name, Source, Destination, Mode, RW}))
  };
($inspect[0] // []) as $cs
| {
    schema: $schema,
    agent_version: $agent_version,
    host: $host,
    reported_at: $reported_at,
    engine: (($version[0].Server // {}) | {
      version: .Version, api_version: .ApiVersion, min_api_version: .MinAPIVersion,
      os: .Os, arch: .Arch, kernel_version: .KernelVersion, go_version: .GoVersion
    }),
    host_facts: $facts[0],
    containers: ($cs | map(trim_container)),
    stats: (
      [ $stats[] | select(type == "object") | . as $s
        | ([$cs[].Id | select(startswith($s.ID // "-"))][0]) as $full
        | select($full != null)
        | ($s.MemUsage | pair) as $mem | ($s.NetIO | pair) as $net | ($s.BlockIO | pair) as $blk
        | {key: $full, value: {
            cpu_percent: ($s.CPUPerc | num_or_null),
            mem_usage_bytes: $mem[0], mem_limit_bytes: $mem[1],
            net_rx_bytes: $net[0], net_tx_bytes: $net[1],
            block_read_bytes: $blk[0], block_write_bytes: $blk[1],
            pids: ($s.PIDs | num_or_null)
          }}
      ] | from_entries
    )
  }
JQ
readonly PAYLOAD_JQ

# POST the payload file. Returns 0 on 2xx, 3 on a refusal that retrying cannot
# fix, 4 when the server stayed unreachable / 5xx after the retries.
send_payload() {
	local body=$1 attempt=0 delay=1 code rc
	local retries=${ARCHNEST_AGENT_RETRIES:-4} timeout=${ARCHNEST_AGENT_TIMEOUT:-20}
	local url="${ARCHNEST_URL%/}/api/agents/docker/report"
	local resp="$WORK_DIR/response"
	local -a tls=()
	[[ -n ${ARCHNEST_AGENT_CACERT:-} ]] && tls=(--cacert "$ARCHNEST_AGENT_CACERT")

	while :; do
		# The token goes to curl through a config on stdin (printf is a builtin),
		# so it never appears in any process's argv (ps, /proc/*/cmdline).
		set +e
		code=$(printf 'header = "Authorization: Bearer %s"\n' "$ARCHNEST_AGENT_TOKEN" |
			curl --config - --silent --show-error --proto '=http,https' \
				--connect-timeout 5 --max-time "$timeout" "${tls[@]}" \
				-H 'Content-Type: application/json' -H "User-Agent: $PROG/$AGENT_VERSION" \
				--data-binary "@$body" -o "$resp" -w '%{http_code}' "$url")
		rc=$?
		set -e
		if ((rc == 0)); then
			case $code in
			2??) return 0 ;;
			400) log "server refused the report as malformed (400): $(head -c 300 "$resp")"; return 3 ;;
			401) log "server refused the agent token (401): check ARCHNEST_AGENT_TOKEN (revoked?)"; return 3 ;;
			403) log "server refused this host name for the token (403): a per-host token reports only as its enrolled host (ARCHNEST_AGENT_HOSTNAME)"; return 3 ;;
			413) log "report too large for the server (413): raise its size limit"; return 3 ;;
			503) log "agent ingest is disabled on the server (503): enroll this host there, or set ARCHNEST_AGENT_TOKEN there"; return 3 ;;
			404) log "no agent ingest at $url (404): is the docker_agent plugin enabled?"; return 3 ;;
			*) log "server answered HTTP $code" ;;
			esac
		else
			log "could not reach $url (curl exit $rc)"
		fi
		((attempt >= retries)) && return 4
		attempt=$((attempt + 1))
		log "retry $attempt/$retries in ${delay}s"
		sleep "$delay"
		delay=$((delay * 2 > 60 ? 60 : delay * 2))
	done
}

cleanup() {
	if [[ -n ${SLEEP_PID:-} ]]; then kill "$SLEEP_PID" 2>/dev/null || true; fi
	# Only this process's own pid file (a newer agent may have replaced it).
	if [[ -n ${PID_FILE:-} && $(cat "$PID_FILE" 2>/dev/null) == "$$" ]]; then rm -f "$PID_FILE"; fi
	rm -rf "$WORK_DIR"
}

# The settings an env file may hold: nothing else is accepted from it.
readonly SETTING_NAMES=" ARCHNEST_URL ARCHNEST_AGENT_TOKEN ARCHNEST_AGENT_HOSTNAME ARCHNEST_AGENT_INTERVAL ARCHNEST_AGENT_RETRIES ARCHNEST_AGENT_TIMEOUT ARCHNEST_AGENT_CACERT ARCHNEST_AGENT_DOCKER_TIMEOUT DOCKER_HOST "
readonly HOST_NAME_RE='^[A-Za-z0-9][A-Za-z0-9_.-]{0,252}$'
# Letters, digits and . _ ~ + / = -: a quote, backslash or newline would break out of
# the curl config line (and of the env file).
readonly TOKEN_RE='^[A-Za-z0-9._~+/=-]+$'
readonly URL_RE='^https?://[][A-Za-z0-9._:-]+(/[A-Za-z0-9._~/-]*)?$'
readonly DOCKER_HOST_RE='^(unix:///[A-Za-z0-9._/-]+|tcp://[A-Za-z0-9.-]+:[0-9]{1,5})$'
readonly PATH_RE='^/[A-Za-z0-9._/-]*$'

# Read KEY=VALUE lines into the environment. Parsed, never sourced: a value is data,
# whatever it holds; unknown names and malformed lines are refused. One pair of
# surrounding quotes is dropped (systemd's EnvironmentFile accepts them too).
load_env_file() {
	local file=$1 line key value n=0
	[[ -f $file && -r $file ]] || die 2 "cannot read the env file $file"
	while IFS= read -r line || [[ -n $line ]]; do
		n=$((n + 1))
		[[ $line =~ ^[[:space:]]*(#.*)?$ ]] && continue
		[[ $line =~ ^([A-Z_][A-Z0-9_]*)=(.*)$ ]] || die 2 "$file:$n: not a KEY=VALUE line"
		key=${BASH_REMATCH[1]}
		value=${BASH_REMATCH[2]}
		[[ $SETTING_NAMES == *" $key "* ]] || die 2 "$file:$n: unknown setting $key"
		if [[ $value =~ ^\"(.*)\"$ || $value =~ ^\'(.*)\'$ ]]; then value=${BASH_REMATCH[1]}; fi
		export "$key=$value"
	done <"$file"
}

# The settings a report needs, checked before anything is sent or written.
check_send_settings() {
	require_tools curl
	[[ -n ${ARCHNEST_URL:-} ]] || die 2 "ARCHNEST_URL is not set"
	[[ -n ${ARCHNEST_AGENT_TOKEN:-} ]] || die 2 "ARCHNEST_AGENT_TOKEN is not set"
	[[ $ARCHNEST_AGENT_TOKEN =~ $TOKEN_RE ]] ||
		die 2 "ARCHNEST_AGENT_TOKEN holds characters a bearer token cannot have"
	local interval=${ARCHNEST_AGENT_INTERVAL:-30}
	if [[ ! $interval =~ ^[0-9]+$ ]] || ((10#$interval == 0)); then
		die 2 "ARCHNEST_AGENT_INTERVAL must be a positive integer"
	fi
}

# The install prefix: empty (the real /) or an absolute path without surprises.
install_root() {
	local root=${ARCHNEST_INSTALL_ROOT:-}
	root=${root%/}
	[[ -z $root || $root =~ $PATH_RE ]] || die 2 "ARCHNEST_INSTALL_ROOT must be an absolute path (letters, digits, . _ / -)"
	printf '%s' "$root"
}

pid_file_in() {
	local root=$1
	if mkdir -p "$root/run" 2>/dev/null && [[ -w $root/run ]]; then
		printf '%s' "$root/run/$PROG.pid"
	else
		mkdir -p "$root/var/run" || die 6 "cannot create $root/var/run"
		printf '%s' "$root/var/run/$PROG.pid"
	fi
}

# Stop a detached agent started by --install (only when the pid is really ours).
stop_detached() {
	local pid_file=$1 pid
	[[ -f $pid_file ]] || return 0
	pid=$(head -c 32 "$pid_file" 2>/dev/null || true)
	if [[ $pid =~ ^[0-9]+$ ]] && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "$PROG"; then
		kill "$pid" 2>/dev/null || true
		log "stopped the running agent (pid $pid)"
	fi
	rm -f "$pid_file"
}

systemd_runs() { [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null 2>&1; }

# Write $2 (a file) to $1 atomically with mode $3: a running agent keeps reading the
# old script (bash reads scripts as it goes), readers never see half a file.
put_file() {
	local dest=$1 src=$2 mode=$3 tmp
	tmp=$(mktemp "$(dirname "$dest")/.$PROG.XXXXXX") || die 6 "cannot write in $(dirname "$dest")"
	if ! { cat "$src" >"$tmp" && chmod "$mode" "$tmp" && mv -f "$tmp" "$dest"; }; then
		rm -f "$tmp"
		die 6 "cannot write $dest"
	fi
}

install_agent() {
	local start=$1 root self bin env_file unit pid_file log_file
	root=$(install_root)
	self=${BASH_SOURCE[0]}
	[[ -f $self && -r $self ]] || die 2 "--install needs the script as a file (bash FILE --install), not a pipe"
	REPORT_HOST=${ARCHNEST_AGENT_HOSTNAME:-$(hostname 2>/dev/null || uname -n)}
	[[ $REPORT_HOST =~ $HOST_NAME_RE ]] ||
		die 2 "host name '$REPORT_HOST' is not valid (letters, digits, _ . -); set ARCHNEST_AGENT_HOSTNAME"
	check_send_settings
	[[ $ARCHNEST_URL =~ $URL_RE ]] || die 2 "ARCHNEST_URL must be http(s)://host[:port][/path]"
	[[ -z ${DOCKER_HOST:-} || $DOCKER_HOST =~ $DOCKER_HOST_RE ]] ||
		die 2 "DOCKER_HOST must be unix:///absolute/path or tcp://host:port"
	[[ -z ${ARCHNEST_AGENT_CACERT:-} || $ARCHNEST_AGENT_CACERT =~ $PATH_RE ]] ||
		die 2 "ARCHNEST_AGENT_CACERT must be an absolute path"
	local name
	for name in ARCHNEST_AGENT_RETRIES ARCHNEST_AGENT_TIMEOUT ARCHNEST_AGENT_DOCKER_TIMEOUT; do
		[[ -z ${!name:-} || ${!name} =~ ^[0-9]{1,6}$ ]] || die 2 "$name must be a whole number"
	done
	# The agent itself needs these; better said now than by a unit failing later.
	require_tools jq docker

	bin="$root/usr/local/bin/$PROG.sh"
	env_file="$root/etc/archnest/docker-agent.env"
	unit="$root/etc/systemd/system/$PROG.service"
	mkdir -p "$root/usr/local/bin" "$root/etc/archnest" "$root/etc/systemd/system" ||
		die 6 "cannot create the directories under ${root:-/} (run as root, e.g. with sudo)"
	chmod 0700 "$root/etc/archnest" 2>/dev/null || true

	# The unit comes from the same server as this script: one copy of it exists.
	local -a tls=()
	if [[ -n ${ARCHNEST_AGENT_CACERT:-} ]]; then tls=(--cacert "$ARCHNEST_AGENT_CACERT"); fi
	if ! curl -fsS --proto '=http,https' --connect-timeout 5 --max-time 30 "${tls[@]}" \
		-o "$WORK_DIR/unit" "${ARCHNEST_URL%/}/agent/$PROG.service"; then
		die 6 "could not download the systemd unit from ${ARCHNEST_URL%/}/agent/$PROG.service"
	fi
	grep -q "^ExecStart=/usr/local/bin/$PROG.sh" "$WORK_DIR/unit" ||
		die 6 "the server's answer for the systemd unit is not the agent's unit"

	(
		umask 077
		printf '# Written by %s --install; read by systemd (EnvironmentFile) or --env-file.\n' "$PROG"
		printf 'ARCHNEST_URL=%s\n' "$ARCHNEST_URL"
		printf 'ARCHNEST_AGENT_TOKEN=%s\n' "$ARCHNEST_AGENT_TOKEN"
		printf 'ARCHNEST_AGENT_HOSTNAME=%s\n' "$REPORT_HOST"
		printf 'ARCHNEST_AGENT_INTERVAL=%s\n' "${ARCHNEST_AGENT_INTERVAL:-30}"
		for name in DOCKER_HOST ARCHNEST_AGENT_CACERT ARCHNEST_AGENT_RETRIES ARCHNEST_AGENT_TIMEOUT ARCHNEST_AGENT_DOCKER_TIMEOUT; do
			if [[ -n ${!name:-} ]]; then printf '%s=%s\n' "$name" "${!name}"; fi
		done
	) >"$WORK_DIR/env"
	put_file "$env_file" "$WORK_DIR/env" 0600
	put_file "$bin" "$self" 0755
	put_file "$unit" "$WORK_DIR/unit" 0644
	echo "installed $bin, $env_file (mode 0600) and $unit for host $REPORT_HOST"

	if [[ $start == no ]]; then
		echo "not started (--no-start)"
		return 0
	fi
	pid_file=$(pid_file_in "$root")
	if [[ -z $root ]] && systemd_runs; then
		stop_detached "$pid_file"
		if ! { systemctl daemon-reload && systemctl enable "$PROG.service" && systemctl restart "$PROG.service"; }; then
			die 6 "systemctl could not start $PROG.service (see: journalctl -u $PROG)"
		fi
		echo "started with systemd: systemctl status $PROG"
		return 0
	fi
	# No systemd (a container, a prefix install): a detached loop that outlives this
	# shell and its SSH session, with its pid in a file for --uninstall.
	stop_detached "$pid_file"
	log_file="$root/var/log/$PROG.log"
	mkdir -p "$root/var/log" || die 6 "cannot create $root/var/log"
	setsid nohup "$bin" --env-file "$env_file" --pid-file "$pid_file" >>"$log_file" 2>&1 </dev/null &
	local n
	for n in 1 2 3 4 5 6 7 8 9 10; do
		[[ -s $pid_file ]] && break
		sleep 0.2
	done
	[[ -s $pid_file ]] || die 6 "the agent did not start (see $log_file)"
	echo "systemd is not running here: started the agent detached (pid $(cat "$pid_file"), pid file $pid_file, log $log_file); it does not survive a reboot"
}

uninstall_agent() {
	local root
	root=$(install_root)
	if [[ -z $root ]] && systemd_runs; then
		systemctl disable --now "$PROG.service" 2>/dev/null || true
	fi
	stop_detached "$(pid_file_in "$root")"
	rm -f "$root/usr/local/bin/$PROG.sh" "$root/etc/archnest/docker-agent.env" \
		"$root/etc/systemd/system/$PROG.service"
	if [[ -z $root ]] && systemd_runs; then systemctl daemon-reload || true; fi
	echo "removed the agent, its settings and its unit from ${root:-/}"
}

make_work_dir() {
	WORK_DIR=$(mktemp -d "${TMPDIR:-/tmp}/archnest-agent.XXXXXX")
	trap cleanup EXIT
	# systemctl stop / Ctrl-C: leave at once (the sleep below is waited on, so the
	# trap runs immediately), without leaving the temp dir or a sleep behind.
	trap 'exit 143' TERM
	trap 'exit 130' INT
}

main() {
	local mode=loop start=yes env_file="" pid_file=""
	while (($#)); do
		case $1 in
		--once) mode=once ;;
		--dry-run) mode=dry ;;
		--install) mode=install ;;
		--uninstall) mode=uninstall ;;
		--no-start) start=no ;;
		--env-file | --pid-file)
			(($# >= 2)) || die 2 "$1 needs a file name"
			if [[ $1 == --env-file ]]; then env_file=$2; else pid_file=$2; fi
			shift
			;;
		-h | --help) usage; exit 0 ;;
		*) usage >&2; die 2 "unknown argument: $1" ;;
		esac
		shift
	done
	if [[ -n $env_file ]]; then load_env_file "$env_file"; fi

	case $mode in
	install) make_work_dir && install_agent "$start"; return 0 ;;
	uninstall) make_work_dir && uninstall_agent; return 0 ;;
	esac

	require_tools jq docker
	REPORT_HOST=${ARCHNEST_AGENT_HOSTNAME:-$(hostname 2>/dev/null || uname -n)}
	if [[ ! $REPORT_HOST =~ $HOST_NAME_RE ]]; then
		die 2 "host name '$REPORT_HOST' is not valid (letters, digits, _ . -); set ARCHNEST_AGENT_HOSTNAME"
	fi
	make_work_dir
	local payload="$WORK_DIR/payload.json"

	if [[ $mode == dry ]]; then
		build_payload "$payload" || die 5 "could not query docker"
		cat "$payload"
		return 0
	fi

	check_send_settings
	local interval=$((10#${ARCHNEST_AGENT_INTERVAL:-30}))
	if [[ -n $pid_file && $mode == loop ]]; then
		echo "$$" >"$pid_file" || die 2 "cannot write the pid file $pid_file"
		PID_FILE=$pid_file
	fi

	local rc
	while :; do
		rc=0
		if build_payload "$payload"; then
			send_payload "$payload" || rc=$?
		else
			rc=5
		fi
		if [[ $mode == once ]]; then
			case $rc in
			0) log "report for $REPORT_HOST accepted" ;;
			3) die 3 "the server refused the report" ;;
			4) die 4 "the server could not be reached" ;;
			*) die "$rc" "could not query docker" ;;
			esac
			return 0
		fi
		((rc == 0)) || log "cycle failed (status $rc); next try in ${interval}s"
		sleep "$interval" &
		SLEEP_PID=$!
		wait "$SLEEP_PID" || true
		SLEEP_PID=
	done
}

main "$@"
