#!/usr/bin/env bash
# The main job on the embedded default (a local folder, no cloud account):
# 1. stream the sample data as Prodigy tasks, as `... | prodigy <recipe> ds -` would read them;
# 2. export a sample `prodigy db-out` file into a versioned folder with a manifest.
set -euo pipefail
cd "$(dirname "$0")/.."
out=out/demo
rm -rf "$out"
mkdir -p "$out"
source_cli=packages/fs-source/dist/cli.js
sink_cli=packages/fs-sink/dist/cli.js

echo "== 1. fs-source: sample data -> Prodigy tasks ($out/tasks.jsonl)"
# Media is inlined here so the demo ends; by default images are served by a local proxy.
node "$source_cli" examples/data --exclude 'db-out/**' --exclude README.md --media inline --order listing > "$out/tasks.jsonl"
echo "first task:"
head -1 "$out/tasks.jsonl"

echo
echo "== 2. fs-sink: prodigy db-out -> $out/exports/{dataset}/{answer}/"
node "$sink_cli" "$out/exports/{dataset}/{answer}" --dataset ner-news < examples/data/db-out/ner-news.jsonl
echo "files:"
find "$out/exports" -type f | sort
echo "manifest counts:"
node -e 'const m = require(process.argv[1]); console.log(JSON.stringify(m.counts.answers), m.parts.length, "parts")' "$PWD/$out/exports/ner-news/manifest.json"

echo
echo "== 3. the same export again: nothing changes"
node "$sink_cli" "$out/exports/{dataset}/{answer}" --dataset ner-news < examples/data/db-out/ner-news.jsonl

echo
echo "== 4. a malformed line: clear error, exit code 1, no manifest"
if node "$sink_cli" "$out/broken" < examples/data/db-out/bad-line.jsonl; then
  echo "expected a failure" >&2
  exit 1
fi
test ! -e "$out/broken/manifest.json"
echo
echo "demo ok: see $out/"
