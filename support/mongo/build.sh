#!/usr/bin/env bash
# Builds support/mongo/target/mongo-server.jar (in-memory MongoDB-protocol server, see pom.xml) unless it is
# already newer than its sources, then prints the jar's absolute path on stdout. Needs Java 17+ and Maven.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
jar="$here/target/mongo-server.jar"

up_to_date() {
  [ -s "$jar" ] || return 1
  [ -z "$(find "$here/pom.xml" "$here/src" -newer "$jar" -print -quit)" ]
}

if ! up_to_date; then
  # Serialise concurrent callers (parallel test workers on a fresh machine).
  mkdir -p "$here/target"
  if command -v flock >/dev/null 2>&1; then
    exec 9>"$here/target/.build.lock"
    flock 9
  fi
fi

if ! up_to_date; then
  command -v mvn >/dev/null 2>&1 || { echo "build.sh: mvn (Maven) not found on PATH" >&2; exit 1; }
  command -v java >/dev/null 2>&1 || { echo "build.sh: java not found on PATH" >&2; exit 1; }
  echo "building $jar" >&2
  # Maven's output goes to stderr so stdout carries only the jar path; Maven 3.8 prints bare colour-reset
  # sequences even with -q -B, so strip those and the blank lines they leave.
  (cd "$here" && mvn -q -B package -DskipTests) 2>&1 | sed -e 's/\x1b\[[0-9;]*m//g' -e '/^[[:space:]]*$/d' >&2
  [ -s "$jar" ] || { echo "build.sh: maven finished but $jar is missing" >&2; exit 1; }
  touch "$jar"
fi
echo "$jar"
