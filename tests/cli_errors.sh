#!/usr/bin/env bash
# tests/cli_errors.sh — bad input to the `sortednet` CLI ends with one line on stderr and a
# non-zero exit (label `train`). Usage: cli_errors.sh path/to/sortednet
set -u
cli="$1"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0

# expect NAME EXPECTED-SUBSTRING -- ARGS...: non-zero exit, exactly one stderr line holding it.
expect() {
  local name="$1" want="$2"
  shift 3
  "$cli" "$@" >"$work/out" 2>"$work/err"
  local rc=$? lines
  lines=$(wc -l <"$work/err")
  if [[ $rc -eq 0 || $lines -ne 1 ]] || ! grep -qF -- "$want" "$work/err"; then
    echo "FAIL $name: rc=$rc, $lines stderr line(s):"
    sed 's/^/    /' "$work/err"
    failures=$((failures + 1))
  else
    echo "ok   $name: $(cat "$work/err")"
  fi
}

printf '[train]\nepoch = 3\n' >"$work/typo.toml"
printf '[data]\ndir = "%s/nowhere"\n' "$work" >"$work/nodata.toml"
printf '[optimizer]\nlr = "fast"\n' >"$work/type.toml"
head -c 100 /dev/urandom >"$work/garbage.safetensors"
printf '\x10\x00\x00\x00\x00\x00\x00\x00{"a":1}' >"$work/short.safetensors"

expect "unknown config key" "unknown key 'train.epoch'" -- train --config "$work/typo.toml" --out "$work/run"
expect "wrong value type" "'optimizer.lr' must be a number" -- train --config "$work/type.toml" --out "$work/run"
expect "missing data" "cannot open" -- train --config "$work/nodata.toml" --out "$work/run"
expect "bad --set" "unknown key 'train.nope'" -- info --config "$work/nodata.toml" --set train.nope=1
expect "garbage checkpoint" "declares a header" -- eval --checkpoint "$work/garbage.safetensors"
expect "truncated checkpoint" "declares a header of 16 bytes" -- eval --checkpoint "$work/short.safetensors"
expect "missing flag" "--out" -- train --config "$work/typo.toml"
expect "missing checkpoint" "does not exist" -- export --checkpoint "$work/none" --submodel width=1 --out "$work/x"

echo "$((8 - failures)) passed, $failures failed"
[[ $failures -eq 0 ]]
