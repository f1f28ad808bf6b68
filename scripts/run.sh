#!/usr/bin/env bash
# The one command for a checkout, on a fresh machine too: sets up what is missing, then runs.
#   bash scripts/run.sh dev [--scale ac] [--port N]   everything locally (see the README)
#   bash scripts/run.sh test                          the whole test suite (what CI runs)
#   bash scripts/run.sh <ac-appview command …>        any other command of the CLI
# Set-up (each step only when needed): Node 24 into .tools/ when the machine's Node is older than
# 22; `npm ci` when node_modules is missing or older than package-lock.json; the test MongoDB jar
# (Java 17 and Maven); the Debian packages a command needs (ffmpeg for tapes; Chromium and
# PostgreSQL for the tests), installed with apt-get when running as root, otherwise named with
# the command that installs them.
set -euo pipefail
cd "$(dirname "$0")/.."

need_package() { # <command to look for> <Debian package> <what it is for>
  local probe=$1 package=$2 why=$3
  if command -v "$probe" >/dev/null 2>&1 || ls $probe >/dev/null 2>&1; then return; fi
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "scripts/run.sh: $package is needed ($why) and is not installed; install it with: sudo apt-get install -y $package" >&2
    exit 1
  fi
  if [ "$package" = postgresql ]; then # tests start their own throwaway servers: no default cluster
    mkdir -p /etc/postgresql-common
    echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.conf
  fi
  echo "installing $package ($why)" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$package" >/dev/null
}

command=${1:-}
[ -n "$command" ] || { sed -n '2,5p' "$0" | sed 's/^# //' >&2; exit 2; }
shift

source .ci/node.sh
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund >&2
fi
for tool in java mvn; do
  command -v $tool >/dev/null 2>&1 || { echo "scripts/run.sh: $tool is needed for the local MongoDB stand-in (mongo-java-server); install Java 17 and Maven, e.g. sudo apt-get install -y openjdk-17-jdk-headless maven" >&2; exit 1; }
done
bash support/mongo/build.sh >/dev/null

case "$command" in
  dev)
    need_package ffmpeg ffmpeg "the sample's tapes are MP4s"
    exec npx tsx src/cli.ts dev "$@"
    ;;
  test)
    need_package ffmpeg ffmpeg "tape tests"
    need_package chromium chromium "the dashboard test"
    need_package '/usr/lib/postgresql/*/bin/postgres' postgresql "the test with Bluesky's AppView"
    exec npm test
    ;;
  *)
    exec npx tsx src/cli.ts "$command" "$@"
    ;;
esac
