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
Usage: $PROG [--once | --dry-run | --help]

Collects docker ps -a / inspect / stats / version and host facts, masks
secret-looking environment values, and POSTs one JSON snapshot to
\$ARCHNEST_URL/api/agents/docker/report with the agent bearer token.

  --once      send one report and exit (non-zero when it was not accepted)
  --dry-run   print the payload to stdout and exit; sends nothing, needs no token
  --help      this text
  (default)   loop: one report every \$ARCHNEST_AGENT_INTERVAL seconds

Environment:
  ARCHNEST_URL               server base URL, e.g. https://archnest.example.org
  ARCHNEST_AGENT_TOKEN       the agent token configured on the server
  ARCHNEST_AGENT_HOSTNAME    name reported for this host (default: hostname)
  ARCHNEST_AGENT_INTERVAL    seconds between reports in loop mode (default 30)
  ARCHNEST_AGENT_RETRIES     retries of a failed send, with backoff (default 4)
  ARCHNEST_AGENT_TIMEOUT     seconds for one HTTP request (default 20)
  ARCHNEST_AGENT_CACERT      optional CA bundle file for the server's TLS cert
  ARCHNEST_AGENT_DOCKER_TIMEOUT  seconds for one docker command (default 60)

Exit status: 0 ok, 2 usage or missing dependency, 3 the server refused the
report (400/401/413/503), 4 the server could not be reached after retries,
5 docker could not be queried.
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
			401) log "server refused the agent token (401): check ARCHNEST_AGENT_TOKEN"; return 3 ;;
			413) log "report too large for the server (413): raise its size limit"; return 3 ;;
			503) log "agent ingest is disabled on the server (503): set ARCHNEST_AGENT_TOKEN there"; return 3 ;;
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
	rm -rf "$WORK_DIR"
}

main() {
	local mode=loop
	while (($#)); do
		case $1 in
		--once) mode=once ;;
		--dry-run) mode=dry ;;
		-h | --help) usage; exit 0 ;;
		*) usage >&2; die 2 "unknown argument: $1" ;;
		esac
		shift
	done

	require_tools jq docker
	REPORT_HOST=${ARCHNEST_AGENT_HOSTNAME:-$(hostname 2>/dev/null || uname -n)}
	if [[ ! $REPORT_HOST =~ ^[A-Za-z0-9][A-Za-z0-9_.-]{0,252}$ ]]; then
		die 2 "host name '$REPORT_HOST' is not valid (letters, digits, _ . -); set ARCHNEST_AGENT_HOSTNAME"
	fi

	WORK_DIR=$(mktemp -d "${TMPDIR:-/tmp}/archnest-agent.XXXXXX")
	trap cleanup EXIT
	# systemctl stop / Ctrl-C: leave at once (the sleep below is waited on, so the
	# trap runs immediately), without leaving the temp dir or a sleep behind.
	trap 'exit 143' TERM
	trap 'exit 130' INT
	local payload="$WORK_DIR/payload.json"

	if [[ $mode == dry ]]; then
		build_payload "$payload" || die 5 "could not query docker"
		cat "$payload"
		return 0
	fi

	require_tools curl
	[[ -n ${ARCHNEST_URL:-} ]] || die 2 "ARCHNEST_URL is not set"
	[[ -n ${ARCHNEST_AGENT_TOKEN:-} ]] || die 2 "ARCHNEST_AGENT_TOKEN is not set"
	# A quote, backslash or newline would break out of the curl config line.
	[[ $ARCHNEST_AGENT_TOKEN =~ ^[A-Za-z0-9._~+/=-]+$ ]] ||
		die 2 "ARCHNEST_AGENT_TOKEN holds characters a bearer token cannot have"
	local interval=${ARCHNEST_AGENT_INTERVAL:-30}
	if [[ ! $interval =~ ^[0-9]+$ ]] || ((interval == 0)); then
		die 2 "ARCHNEST_AGENT_INTERVAL must be a positive integer"
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
