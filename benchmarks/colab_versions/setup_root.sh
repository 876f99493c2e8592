#!/bin/sh
# Make (once) a Debian 13 "trixie" root with Python 3.13 and a venv of Colab's versions
# (requirements-colab.txt), for `make colab-check`. Usage: setup_root.sh ROOT
# Needs root and the network (Debian's mirror, PyPI); everything after it runs offline.
set -eu
ROOT=$1
HERE=$(cd "$(dirname "$0")" && pwd)
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
VENV=/opt/colab-venv

if ! command -v debootstrap >/dev/null 2>&1; then
    # the one system package this needs, from Debian's own packages
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap
fi

if [ ! -e "$ROOT/.debootstrap-done" ]; then
    mkdir -p "$ROOT"
    debootstrap --variant=minbase \
        --include=python3.13,python3.13-venv,python3-venv,ca-certificates \
        trixie "$ROOT" "$MIRROR"
    touch "$ROOT/.debootstrap-done"
fi

# pip inside the root resolves wheels for its own Python (3.13); it needs DNS for that,
# and the host's certificate bundle (the registry may be reached through a proxy that the
# host's bundle trusts and Debian's does not)
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
cp "${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}" "$ROOT/etc/ssl/host-ca.crt"
STAMP="$ROOT$VENV/.installed-$(cat "$HERE"/requirements-colab*.txt | sha256sum | cut -c1-16)"
if [ ! -e "$STAMP" ]; then
    cp "$HERE"/requirements-colab*.txt "$ROOT/tmp/"
    # env -i: the host's pip settings (local wheel folders, version caps) mean nothing here
    chroot "$ROOT" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
        PIP_CONFIG_FILE=/dev/null PIP_DISABLE_PIP_VERSION_CHECK=1 \
        PIP_CERT=/etc/ssl/host-ca.crt sh -eu -c "
        test -x $VENV/bin/python || python3.13 -m venv $VENV
        $VENV/bin/pip install --quiet --no-cache-dir -r /tmp/requirements-colab.txt
        $VENV/bin/pip freeze > $VENV/freeze.txt
        # what a Colab session would download when the release's first cell pip-installs
        # (otter-grader, if the release still installs it): served offline to the kernel
        rm -rf /opt/wheelhouse
        $VENV/bin/pip download --quiet --no-cache-dir -d /opt/wheelhouse \
            -r /tmp/requirements-colab-session.txt"
    touch "$STAMP"
fi
echo "root ready: $ROOT ($(chroot "$ROOT" $VENV/bin/python -V))"
