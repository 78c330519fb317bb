#!/usr/bin/env bash
# Builds the OCI image the Helm charts name, without a container engine:
#   1. wheels of the project and its dependencies (postgres and otel extras) on this machine;
#   2. a minimal Debian root filesystem (mmdebstrap, Debian's python3), with a venv at /app/venv
#      holding those wheels, the contracts at /app/schemas/avro, the process definitions at
#      /app/processes and the policies at /app/policies, and a non-root user 10001;
#   3. that filesystem as one layer of an OCI image layout (umoci), with its entrypoint and user.
#
#   deploy/image/build.sh            -> dist/image (OCI layout), tag = the project's version
#
# Push it with skopeo (Debian package): skopeo copy oci:dist/image:0.1.0 docker://REGISTRY/choreograph:0.1.0
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
OUT=${CHOREOGRAPH_IMAGE_DIR:-$REPO/dist/image}
SUITE=${CHOREOGRAPH_IMAGE_SUITE:-bookworm}
PY=${PYTHON:-$REPO/.venv/bin/python}
WORK=$(mktemp -d /tmp/choreograph-image.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

say() { printf 'image: %s\n' "$*"; }
die() { printf 'image: error: %s\n' "$*" >&2; exit 1; }

need=()
command -v mmdebstrap >/dev/null 2>&1 || need+=(mmdebstrap)
command -v umoci >/dev/null 2>&1 || need+=(umoci)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    die "missing ${need[*]} (Debian packages); install them and retry"
  fi
fi
[ "$(id -u)" = 0 ] || die "run as root: mmdebstrap and umoci keep file owners only as root"

VERSION=$("$PY" -c 'import tomllib; print(tomllib.load(open("'"$REPO"'/pyproject.toml", "rb"))["project"]["version"])')
TAG=${CHOREOGRAPH_IMAGE_TAG:-$VERSION}

say "wheels of choreograph $VERSION and its dependencies"
"$PY" -m pip wheel --quiet --wheel-dir "$WORK/wheels" "$REPO[postgres,otel]"

say "Debian $SUITE root filesystem with python3 (mmdebstrap)"
mkdir -p "$WORK/app"
cp -r "$REPO/schemas" "$REPO/processes" "$REPO/policies" "$WORK/app/"
mmdebstrap --quiet --variant=minbase --include=python3,python3-venv,ca-certificates \
  --customize-hook="copy-in $WORK/wheels /tmp" \
  --customize-hook="copy-in $WORK/app /" \
  --customize-hook='chroot "$1" python3 -m venv /app/venv' \
  --customize-hook='chroot "$1" env -i PATH=/usr/bin:/bin /app/venv/bin/pip install --quiet --no-index --find-links /tmp/wheels "choreograph[postgres,otel]"' \
  --customize-hook='rm -rf "$1/tmp/wheels" "$1/var/cache/apt/archives"/*.deb "$1/var/lib/apt/lists"/*' \
  --customize-hook='chroot "$1" useradd --uid 10001 --user-group --home-dir /app --no-create-home choreograph' \
  --customize-hook='mkdir -p "$1/var/lib/choreograph" && chown 10001:10001 "$1/var/lib/choreograph"' \
  "$SUITE" "$WORK/rootfs.tar"

say "OCI image layout at $OUT (umoci), tag $TAG"
rm -rf "$OUT"
mkdir -p "$(dirname "$OUT")"
umoci init --layout "$OUT"
umoci new --image "$OUT:$TAG"
umoci unpack --image "$OUT:$TAG" "$WORK/bundle" >/dev/null
tar -C "$WORK/bundle/rootfs" -xf "$WORK/rootfs.tar"
umoci repack --image "$OUT:$TAG" "$WORK/bundle"
umoci config --image "$OUT:$TAG" \
  --config.user 10001:10001 \
  --config.workingdir /app \
  --config.env PATH=/app/venv/bin:/usr/local/bin:/usr/bin:/bin \
  --config.env PYTHONUNBUFFERED=1 \
  --config.env CHOREOGRAPH_STATE_DIR=/var/lib/choreograph \
  --config.env CHOREOGRAPH_POLICIES=/app/policies \
  --config.entrypoint saga-tracker \
  --config.cmd run \
  --config.label org.opencontainers.image.title=choreograph \
  --config.label "org.opencontainers.image.version=$VERSION"
umoci gc --layout "$OUT"
say "built $OUT:$TAG ($(du -sh "$OUT" | cut -f1)); push: skopeo copy oci:$OUT:$TAG docker://REGISTRY/choreograph:$TAG"
