#!/bin/sh
# nginx for the buffering front (README: "Running it on the internet"). `make serve` and `make test` run this.
# Found on PATH or in /usr/sbin: nothing to do. Missing, as root on Debian/Ubuntu: installed from the distribution
# (security updates come with the system's). Otherwise: say how to install it, or how to run without the front.
set -eu
case "$(printf %s "${GUIDEPOST_FRONT:-on}" | tr 'A-Z' 'a-z')" in
    off|false|0|no|n|f) [ "${1:-}" = "--always" ] || exit 0 ;;
esac
if command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || [ -x /usr/local/sbin/nginx ]; then
    exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "Installing nginx from the distribution for the buffering front (apt-get)..."
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends nginx
    # The package may start its own default site on port 80; Guidepost runs its own nginx and needs none.
    if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet nginx 2>/dev/null; then
        systemctl disable --now nginx
    fi
    exit 0
fi
cat >&2 <<'MSG'
error: the buffering front needs nginx, which is not installed.
  Debian/Ubuntu: sudo apt-get install nginx   Fedora/RHEL: sudo dnf install nginx   macOS: brew install nginx
  (or run `make serve` as root on Debian/Ubuntu, which installs it). Behind a proxy that already buffers whole
  requests (a cloud load balancer, your own nginx), run without it: GUIDEPOST_FRONT=off make serve
MSG
exit 1
