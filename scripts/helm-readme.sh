#!/usr/bin/env bash
# Regenerate the Parameters section of helm/hookline/README.md from the `## @param`
# comments of helm/hookline/values.yaml, with Bitnami's readme-generator-for-helm (from npm,
# installed into .cache/npm-helm by scripts/helm-lint.sh, or here if missing).
#
#   scripts/helm-readme.sh           rewrite the section
#   scripts/helm-readme.sh --check   exit 1 if it is not current (the README is not touched)
set -euo pipefail
cd "$(dirname "$0")/.."
READMEGEN_VERSION=2.7.2
prefix=.cache/npm-helm
gen=$prefix/node_modules/.bin/readme-generator
if ! [ -x "$gen" ] || ! grep -q "\"version\": \"$READMEGEN_VERSION\"" "$prefix/node_modules/@bitnami/readme-generator-for-helm/package.json" 2>/dev/null; then
  echo "== installing @bitnami/readme-generator-for-helm@$READMEGEN_VERSION from npm (once)" >&2
  mkdir -p "$prefix"
  npm install --no-audit --no-fund --silent --prefix "$prefix" "@bitnami/readme-generator-for-helm@$READMEGEN_VERSION" >&2
fi
readme=helm/hookline/README.md
if [ "${1:-}" = --check ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  cp "$readme" "$tmp/README.md"
  "$gen" --values helm/hookline/values.yaml --readme "$tmp/README.md" >"$tmp/log" 2>&1 \
    || { cat "$tmp/log" >&2; echo "helm-readme: readme-generator refused helm/hookline/values.yaml (every key needs a ## @param)" >&2; exit 1; }
  if ! diff -u "$readme" "$tmp/README.md" >"$tmp/diff"; then
    head -40 "$tmp/diff" >&2
    echo "helm-readme: $readme is not current: run scripts/helm-readme.sh" >&2
    exit 1
  fi
  echo "helm-readme: README parameters current"
else
  "$gen" --values helm/hookline/values.yaml --readme "$readme" >/dev/null
  echo "helm-readme: wrote the Parameters section of $readme"
fi
