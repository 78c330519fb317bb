#!/usr/bin/env bash
# Installs what validating the charts needs, when missing:
#   helm      built from source through the Go module proxy into ~/.cache/choreograph/bin
#             (the machines reach the Go proxy, not the Helm release downloads)
#   promtool  from Debian's prometheus package, to check the PrometheusRule's rules
#   dashboard-check  built from deploy/helm/dashboard-check (Grafana's dashboard schema, as the
#             Grafana Foundation SDK generates it, from the Go module proxy)
# kubernetes-validate (the Kubernetes schemas) comes with the Python dev extra.
set -euo pipefail

HELM_VERSION="${CHOREOGRAPH_HELM_VERSION:-v3.22.0}"
BIN="${CHOREOGRAPH_CACHE:-$HOME/.cache/choreograph}/bin"
mkdir -p "$BIN"

# A helm built by `go install` does not know its own version: a marker file records it.
if [ ! -x "$BIN/helm" ] || [ "$(cat "$BIN/helm.version" 2>/dev/null)" != "$HELM_VERSION" ]; then
  if ! command -v go >/dev/null 2>&1; then
    echo "tools: Go is needed to build helm ${HELM_VERSION} (or put helm ${HELM_VERSION} at $BIN/helm)" >&2
    exit 1
  fi
  echo "tools: building helm ${HELM_VERSION} (a few minutes, once)"
  GOBIN="$BIN" GOFLAGS=-mod=mod go install "helm.sh/helm/v3/cmd/helm@${HELM_VERSION}"
  echo "$HELM_VERSION" > "$BIN/helm.version"
fi

if ! command -v promtool >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "tools: installing promtool (Debian package prometheus)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  else
    echo "tools: promtool is missing; install Prometheus' promtool and retry" >&2
    exit 1
  fi
fi
# Rebuilt whenever its source changes: a marker records the source's checksum.
CHECKER_SRC="$(cd "$(dirname "$0")/dashboard-check" && pwd)"
CHECKER_SUM="$(cat "$CHECKER_SRC"/go.mod "$CHECKER_SRC"/go.sum "$CHECKER_SRC"/main.go | sha256sum | cut -c1-16)"
if [ ! -x "$BIN/dashboard-check" ] || [ "$(cat "$BIN/dashboard-check.version" 2>/dev/null)" != "$CHECKER_SUM" ]; then
  if ! command -v go >/dev/null 2>&1; then
    echo "tools: Go is needed to build dashboard-check" >&2
    exit 1
  fi
  echo "tools: building dashboard-check"
  (cd "$CHECKER_SRC" && GOFLAGS=-mod=mod go build -o "$BIN/dashboard-check" .)
  echo "$CHECKER_SUM" > "$BIN/dashboard-check.version"
fi
echo "tools: helm ${HELM_VERSION} at $BIN/helm; $(promtool --version 2>&1 | head -1); dashboard-check at $BIN/dashboard-check"
