# Shared by scripts/run and scripts/test: set up the Python environment (and, for the
# tests, the browser client's checkers). Source it from the repository root.

VENV=.venv
# What the server needs from Debian besides Python: the fonts snapshot labels are drawn
# in, and FriBiDi, which Pillow needs to shape them (videoassist/snapshots/fonts.py).
SERVER_DEBIAN_PACKAGES=(fonts-noto-core fonts-noto-cjk libfribidi0)
# What the benchmark needs besides the tests' own: Debian's Janus, whose videoroom
# plugin `scripts/bench.py relay --server janus` measures under the same load as the
# server (docs/performance.md). Only installed: the benchmark starts its own janus
# with a configuration of its own, on 127.0.0.1.
BENCH_DEBIAN_PACKAGES=(janus)
# What the tests check the deployment artefacts with besides nginx, haproxy and coturn:
# Debian's docker-compose (1.29), whose `config` validates compose.yaml without a
# container engine (tests/test_compose.py). Only its checker runs: no engine is
# installed or needed (docker.io is a recommendation, left out).
DEPLOY_CHECK_DEBIAN_PACKAGES=(docker-compose)

# Install Debian packages that are missing; needs root (CI and the dev machines are).
ensure_debian_packages() {
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
            || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        echo "missing Debian packages: ${missing[*]}; run as root or: sudo apt-get install ${missing[*]}" >&2
        exit 1
    fi
    echo "installing Debian packages: ${missing[*]}" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Create .venv if missing and install into it exactly what a lock file pins, checking every
# file's hash, then the project itself (editable, no dependencies, built with the locked
# setuptools). LOCK is "serve" or "test": requirements/LOCK.txt. Reinstalls when the lock
# changed since the last install. The lock is made from pyproject.toml by ./scripts/lock.
ensure_venv() {
    local lock="requirements/$1.txt"
    if [ ! -x "$VENV/bin/python" ]; then
        if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
            ensure_debian_packages python3-venv
        fi
        echo "creating $VENV" >&2
        python3 -m venv "$VENV"
    fi
    local stamp="$VENV/.videoassist-installed"
    local want
    want="$(sha256sum "$lock" pyproject.toml | sha256sum | cut -d' ' -f1) $lock"
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
        echo "installing $lock into $VENV" >&2
        local pip=("$VENV/bin/python" -m pip --disable-pip-version-check)
        # --no-deps: the lock is complete (tests/test_lock.py); nothing else may come in.
        "${pip[@]}" install --quiet --require-hashes --no-deps -r "$lock" \
            2> >(grep -v "^WARNING: Location" >&2)
        "${pip[@]}" install --quiet --no-deps --no-build-isolation -e . \
            2> >(grep -v "^WARNING: Location" >&2)
        echo "$want" > "$stamp"
    fi
}

# Install the browser client's checkers (TypeScript, ESLint) into node_modules from
# package-lock.json when it changed since the last install: `npm ci` takes exactly the
# versions it pins, checks each tarball against its integrity hash, runs no package's
# install scripts, and fails if package.json and the lock disagree. Node.js and npm
# come from Debian when the machine has none.
ensure_node_modules() {
    if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
        ensure_debian_packages nodejs npm
    fi
    # ESLint 9 needs 18.18 (Debian 12's nodejs is 18.20).
    if ! node -e 'const [a, b] = process.versions.node.split(".").map(Number);
                  process.exit(a > 18 || (a === 18 && b >= 18) ? 0 : 1)'; then
        echo "Node.js $(node --version) is too old for the client's checkers: 18.18 or later" >&2
        exit 1
    fi
    local stamp=node_modules/.videoassist-installed
    local want
    want="$(cat package.json package-lock.json | sha256sum | cut -d' ' -f1)"
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
        echo "installing the client's checkers into node_modules (npm ci)" >&2
        npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >&2
        echo "$want" > "$stamp"
    fi
}
