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
  command -v mvn >/dev/null 2>&1 || { echo "build.sh: mvn (Maven) not found on PATH" >&2; exit 1; }
  command -v java >/dev/null 2>&1 || { echo "build.sh: java not found on PATH" >&2; exit 1; }
  echo "building $jar" >&2
  # Maven's own progress goes to stderr so stdout carries only the jar path.
  (cd "$here" && mvn -q -B -Dstyle.color=never package -DskipTests) >&2
  [ -s "$jar" ] || { echo "build.sh: maven finished but $jar is missing" >&2; exit 1; }
  touch "$jar"
fi
echo "$jar"
