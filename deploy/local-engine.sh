#!/usr/bin/env bash
# Makes a Debian machine without an image registry able to build and run this project's images: Debian's Docker
# engine, started so that containers reach only this machine, and stand-ins for the base images that cannot be
# pulled, made from Debian's packages. Idempotent and quick when already done. On a machine with a real registry
# none of this is needed: `docker build` pulls python:3.11-slim-bookworm and haproxy itself.
#
#   sudo bash deploy/local-engine.sh          # then: DOCKER_BUILDKIT=1 docker build --network host ...
#
# Network rule: dockerd starts with --iptables=false --ip-masq=false from its first start (with iptables it sets
# the FORWARD policy to DROP and adds a MASQUERADE rule that outlive it), and IP forwarding is off, so that no
# container packet is routed off the machine. Builds use --network host; user networks (compose) work inside it.
set -euo pipefail

BASE=python:3.11-slim-bookworm        # the name the Dockerfile's FROM lines use
LB=latentgen-haproxy:local            # compose's load balancer (LB_IMAGE), from Debian's haproxy package
ROOTFS=${ROOTFS:-/var/tmp/latentgen-rootfs}
DOCKER=/usr/bin/docker                # Debian's client (BuildKit with DOCKER_BUILDKIT=1)

say() { echo "local-engine: $*"; }

if [ "$(id -u)" != 0 ]; then
    say "run as root (it installs packages and starts dockerd)"
    exit 1
fi
if ! command -v dockerd >/dev/null || ! command -v debootstrap >/dev/null || [ ! -x "$DOCKER" ]; then
    say "installing docker.io, docker-compose and debootstrap"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        docker.io docker-compose debootstrap ca-certificates >/dev/null
fi
if ! "$DOCKER" info >/dev/null 2>&1; then
    say "starting dockerd"
    nohup dockerd --bridge=none --iptables=false --ip-masq=false >/var/log/latentgen-dockerd.log 2>&1 &
    for _ in $(seq 60); do "$DOCKER" info >/dev/null 2>&1 && break; sleep 1; done
    "$DOCKER" info >/dev/null 2>&1 || { say "dockerd did not start; see /var/log/latentgen-dockerd.log"; exit 1; }
fi
sysctl -qw net.ipv4.ip_forward=0

if ! "$DOCKER" image inspect "$BASE" >/dev/null 2>&1; then
    say "making $BASE from Debian bookworm (debootstrap, about 2 minutes)"
    rm -rf "$ROOTFS"
    debootstrap --variant=minbase --include=python3,python3-venv,python-is-python3,ca-certificates \
        bookworm "$ROOTFS" >/dev/null
    # pip inside a build verifies registries against this machine's CA bundle (a proxy's, where there is one).
    cp /etc/ssl/certs/ca-certificates.crt "$ROOTFS/etc/ssl/certs/ca-certificates.crt"
    printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' >"$ROOTFS/etc/pip.conf"
    tar -C "$ROOTFS" -c . | "$DOCKER" import --change 'CMD ["python3"]' - "$BASE" >/dev/null
    rm -rf "$ROOTFS"
fi

if ! "$DOCKER" image inspect "$LB" >/dev/null 2>&1; then
    say "making $LB from Debian's haproxy package"
    printf '%s\n' \
        "FROM $BASE" \
        "RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends haproxy && rm -rf /var/lib/apt/lists/*" \
        'CMD ["haproxy", "-W", "-db", "-f", "/usr/local/etc/haproxy/haproxy.cfg"]' \
        | DOCKER_BUILDKIT=1 "$DOCKER" build --network host -q -t "$LB" - >/dev/null
fi
say "ready: $("$DOCKER" version --format 'engine {{.Server.Version}}'), images $BASE and $LB"
