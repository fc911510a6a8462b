# Shared by scripts/run and scripts/test: set up the Python environment.
# Source it from the repository root.

VENV=.venv
# What the server needs from Debian besides Python: the fonts snapshot labels are drawn
# in, and FriBiDi, which Pillow needs to shape them (videoassist/snapshots/fonts.py).
SERVER_DEBIAN_PACKAGES=(fonts-noto-core fonts-noto-cjk libfribidi0)

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

# Create .venv if missing and install the project (with EXTRAS, e.g. "[test]") when
# pyproject.toml changed since the last install.
ensure_venv() {
    local extras="$1"
    if [ ! -x "$VENV/bin/python" ]; then
        if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
            ensure_debian_packages python3-venv
        fi
        echo "creating $VENV" >&2
        python3 -m venv "$VENV"
    fi
    local stamp="$VENV/.videoassist-installed"
    local want
    want="$(sha256sum pyproject.toml | cut -d' ' -f1)$extras"
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
        echo "installing videoassist$extras into $VENV" >&2
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e ".$extras" \
            2> >(grep -v "^WARNING: Location" >&2)
        echo "$want" > "$stamp"
    fi
}
