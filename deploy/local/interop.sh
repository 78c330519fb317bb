#!/usr/bin/env bash
# The Java interop module (tests/interop/java): what a Java team would write against choreograph
# services, built with Maven from Maven Central artifacts, as the broker and registry are.
#
#   interop.sh build               build it when its sources changed; print its classpath
#   interop.sh run CLASS ARGS...   run one of its programs (ProduceOrders, CheckRecords)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MODULE=$(cd "$HERE/../../tests/interop/java" && pwd)
TARGET=$MODULE/target
STAMP=$TARGET/.built

die() { printf 'interop: error: %s\n' "$*" >&2; exit 1; }

build() {
  command -v mvn >/dev/null 2>&1 || die "Apache Maven is required (not found on PATH); run 'make prereqs' or install maven"
  command -v javac >/dev/null 2>&1 || die "a JDK 17 or newer is required (javac not found)"
  if [ ! -f "$STAMP" ] || [ -n "$(find "$MODULE/pom.xml" "$MODULE/src" -newer "$STAMP" -print -quit)" ]; then
    mvn -q -B -f "$MODULE/pom.xml" -DskipTests package >&2 || die "the Java module did not build (see above)"
    touch "$STAMP"
  fi
  printf '%s\n' "$TARGET/classes:$TARGET/lib/*"
}

case "${1:-}" in
  build) build ;;
  run)
    shift
    [ $# -ge 1 ] || die "usage: interop.sh run CLASS ARGS..."
    classpath=$(build)
    class=$1
    shift
    exec java -cp "$classpath" "dev.choreograph.interop.$class" "$@"
    ;;
  *) die "usage: interop.sh build | run CLASS ARGS..." ;;
esac
