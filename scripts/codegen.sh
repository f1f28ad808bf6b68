#!/usr/bin/env bash
# Regenerates src/lexicon/ (TypeScript types, validators and the lexicon set) from lexicons/
# with the official @atproto/lex-cli. Deterministic: the same lexicons give the same files.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf src/lexicon
mapfile -t files < <(find lexicons -name '*.json' | LC_ALL=C sort)
# Call lex-cli by path: another package (@atproto/lex) also installs a `lex` binary.
yes | node node_modules/@atproto/lex-cli/bin.js gen-server src/lexicon "${files[@]}" >/dev/null
