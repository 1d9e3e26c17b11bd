#!/usr/bin/env bash
# tests/cli_errors.sh — bad input to the `sortednet` CLI ends with one line on stderr and a
# non-zero exit (label `train`), and no output overwrites a run: a second `train` into a run's
# folder, `export`/`predict`/`eval --csv` onto a checkpoint. Usage: cli_errors.sh path/to/sortednet
set -u
cli="$1"
cd "$(dirname "$0")/.."  # the recipes in configs/
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
expect "unknown subcommand" "unknown subcommand 'trian' (train, eval," -- trian --config "$work/typo.toml"
expect "missing checkpoint" "does not exist" -- export --checkpoint "$work/none" --submodel width=1 --out "$work/x"

# Recipe values that make no sense.
printf '[optimizer]\nmomentum = nan\n' >"$work/nan.toml"
expect "nan in a recipe" "'optimizer.momentum' must be a finite number" -- info --config "$work/nan.toml"
expect "beta1 above 1" "'optimizer.beta1' must be in [0, 1), got 2" -- info --config configs/fmnist-mlp.toml --set optimizer.beta1=2
expect "eps zero" "'optimizer.eps' must be positive" -- info --config configs/fmnist-mlp.toml --set optimizer.eps=0
expect "epochs overflow" "'train.epochs' must be at most" -- info --config configs/fmnist-mlp.toml \
  --set train.epochs=6148914691236517206
expect "--set over two lines" "spans several lines" -- info --config configs/fmnist-mlp.toml --set $'train.epochs=3\ntrain.seed=1'
expect "non-UTF-8 text" "'data.dir' is not valid UTF-8" -- info --config configs/fmnist-mlp.toml --set $'data.dir=fm\xe9nist'
expect "a device as recipe" "is not a regular file" -- info --config /dev/zero
expect "zero images" "--count: must be an integer in [1, " -- predict --checkpoint "$work/garbage.safetensors" --count 0 --out "$work/p"

# Outputs that would destroy a run. A 3-step run to work on:
mlp=(--config configs/fmnist-mlp.toml --set train.max_steps=3 --set data.train_limit=512 --set data.test_limit=64
     --set eval.submodels=width=1024 --set eval.latency_repeats=1)
if "$cli" train "${mlp[@]}" --out "$work/run" >/dev/null 2>"$work/err"; then
  before=$(md5sum <"$work/run/checkpoint.safetensors")
  expect "a second run into a run's folder" "already holds a run (checkpoint.safetensors); continue it with --resume" -- \
    train "${mlp[@]}" --out "$work/run"
  expect "export over its checkpoint" "is the checkpoint being read" -- export --checkpoint "$work/run" --submodel width=128 \
    --out "$work/run/checkpoint.safetensors"
  expect "predict over its checkpoint" "is the checkpoint being read" -- predict --checkpoint "$work/run" \
    --out "$work/run/checkpoint.safetensors"
  expect "eval table over its checkpoint" "is the checkpoint being read" -- eval --checkpoint "$work/run" \
    --submodels width=128 --csv "$work/run/checkpoint.safetensors"
  cp "$work/run/checkpoint.safetensors" "$work/other.safetensors"
  expect "export over another training checkpoint" "holds a training checkpoint; refusing to overwrite it" -- \
    export --checkpoint "$work/run" --submodel width=128 --out "$work/other.safetensors"
  mkdir "$work/dir"
  expect "export to a folder" "is a directory" -- export --checkpoint "$work/run" --submodel width=128 --out "$work/dir"
  [[ $(md5sum <"$work/run/checkpoint.safetensors") == "$before" && ! -e "$work/dir.tmp" ]] &&
    echo "ok   the checkpoint is untouched and nothing is left behind" ||
    { echo "FAIL the checkpoint changed or a temporary file was left"; failures=$((failures + 1)); }
  expect "a typo in eval.submodels, before training" "'foo' is not axis=size" -- train "${mlp[@]}" \
    --set eval.submodels=foo --out "$work/typo-run"
  [[ ! -e "$work/typo-run/metrics.jsonl" ]] || { echo "FAIL the typo was found after training"; failures=$((failures + 1)); }
  expect "crop padding past the image" "'data.crop_padding' must be at most the image side (28)" -- train "${mlp[@]}" \
    --set data.crop_padding=1000 --out "$work/crop-run"
  # A checkpoint whose step reads -7 (std::stoull would take it as 2^64 - 7).
  /usr/bin/python3 - "$work/run/checkpoint.safetensors" "$work/neg/checkpoint.safetensors" <<'PY'
import json, os, struct, sys
data = open(sys.argv[1], 'rb').read()
n = struct.unpack('<Q', data[:8])[0]
header = json.loads(data[8:8 + n])
header['__metadata__']['step'] = '-7'
text = json.dumps(header).encode()
text += b' ' * (-len(text) % 8)
os.makedirs(os.path.dirname(sys.argv[2]), exist_ok=True)
open(sys.argv[2], 'wb').write(struct.pack('<Q', len(text)) + text + data[8 + n:])
PY
  expect "a negative step in a checkpoint" "metadata 'step' is not a number in [0, " -- train "${mlp[@]}" \
    --out "$work/neg" --resume
else
  echo "FAIL the 3-step run: $(cat "$work/err")"
  failures=$((failures + 1))
fi

echo "$failures failed"
[[ $failures -eq 0 ]]
