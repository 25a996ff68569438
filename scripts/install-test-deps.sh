#!/usr/bin/env bash
# Install the system packages the test environment (tests/testenv) needs.
# Idempotent: apt is only touched when something is actually missing, so CI
# images that already carry the tools pay nothing. Must run as root.
set -euo pipefail

if [[ ${EUID} -ne 0 ]]; then
    echo "install-test-deps.sh: must run as root" >&2
    exit 1
fi

# Another apt/dpkg run (e.g. an image build step) may hold the lock; wait for
# it instead of failing.
APT_OPTS=(-o DPkg::Lock::Timeout=900 -o Acquire::Retries=3)

have_cmd() { command -v "$1" >/dev/null 2>&1; }
have_pkg() { dpkg -s "$1" >/dev/null 2>&1; }

have_postgres() {
    have_cmd initdb && return 0
    compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null
}

missing=()
# Check the binary we actually run rather than the package name: some images
# ship a client-only docker or a PostgreSQL built outside apt.
have_cmd dockerd || missing+=(docker.io)
[[ -x /usr/sbin/sshd ]] || missing+=(openssh-server)
have_cmd ssh && have_cmd ssh-keygen || missing+=(openssh-client)
have_pkg busybox-static || missing+=(busybox-static)
have_cmd jq || missing+=(jq)
have_cmd curl || missing+=(curl)
have_cmd chromium || missing+=(chromium)
have_postgres || missing+=(postgresql)
have_cmd shellcheck || missing+=(shellcheck)
have_cmd ip || missing+=(iproute2)
# Two replicas behind a load balancer (tests/replicas).
[[ -x /usr/sbin/haproxy ]] || have_cmd haproxy || missing+=(haproxy)
# The image tests' base image: a bookworm root from the Debian mirror (no registry).
have_cmd debootstrap || missing+=(debootstrap)
# The single sign-on tests run a real OpenID provider (npm oidc-provider, installed by
# npm ci from package-lock.json) on node; Debian's nodejs (18) is new enough.
have_cmd node || missing+=(nodejs)
have_cmd npm || missing+=(npm)

if ((${#missing[@]} == 0)); then
    echo "install-test-deps.sh: everything is already installed"
    exit 0
fi

echo "install-test-deps.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get "${APT_OPTS[@]}" update
apt-get "${APT_OPTS[@]}" install -y --no-install-recommends "${missing[@]}"

# The distribution's docker.io starts the machine-wide daemon; the tests never
# use it (they run their own isolated dockerd), so there is nothing to enable.
echo "install-test-deps.sh: done"
