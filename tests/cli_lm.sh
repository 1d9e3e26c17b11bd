#!/usr/bin/env bash
# tests/cli_lm.sh — the language model through the CLI (label `train`): a few SoFT steps of
# fortunes-llama on a small generated corpus, eval of every exit and of an early-exit policy,
# generate (greedy, sampled, early exit, speculative greedy and sampled), clear one-line errors
# for bad decoding flags, and the training loop's faults: a second run into a run's folder, a
# non-finite gradient skipped or stopping the run, SIGTERM saving a checkpoint that --resume
# continues. Usage: cli_lm.sh path/to/sortednet
set -u
cli="$1"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0
fail() { echo "FAIL $1"; sed 's/^/    /' "$work/err" 2>/dev/null | tail -5; failures=$((failures + 1)); }

mkdir -p "$work/corpus"
for f in a b; do
  for i in $(seq 300); do echo "Fortune $f$i: a penny saved is a penny earned, said the $f-man $i times."; done >"$work/corpus/$f"
done
run="$work/run"
if "$cli" train --config configs/fortunes-llama.toml --out "$run" --set data.dir="$work/corpus" --set data.context=32 \
    --set data.batch_size=2 --set train.max_steps=4 --set data.test_limit=4 --set optimizer.warmup_steps=1 \
    >"$work/out" 2>"$work/err"; then
  for f in checkpoint.safetensors metrics.jsonl eval.csv eval.svg; do [[ -s "$run/$f" ]] || fail "train wrote no $f"; done
else
  fail "train"
fi

if "$cli" eval --checkpoint "$run" --early-exit 0.9,0.9,0.9 --early-exit 0,0,0 --csv "$work/eval.csv" \
    >"$work/out" 2>"$work/err"; then
  rows=$(($(wc -l <"$work/eval.csv") - 1))
  [[ $rows -eq 6 ]] || fail "eval: $rows rows instead of 4 exits + 2 policies"
  grep -q "^\"early-exit 0/0/0\"," "$work/eval.csv" || fail "eval: no row of the policy 0,0,0"
else
  fail "eval --early-exit"
fi

# ok NAME STDERR-SUBSTRING -- ARGS...: exit 0, the continuation on stdout, the statistics on stderr.
ok() {
  local name="$1" want="$2"
  shift 3
  if "$cli" generate --checkpoint "$run" --prompt "Fortune " --max-new 24 "$@" >"$work/out" 2>"$work/err" &&
      grep -q "^Fortune " "$work/out" && grep -qF -- "$want" "$work/err"; then
    echo "ok   $name: $(tail -1 "$work/err")"
  else
    fail "$name"
  fi
}
ok "greedy" "greedy" --
ok "sampled" "sampled" -- --temperature 0.8 --seed 3
ok "shallow exit" "exit 2" -- --exit 2
ok "early exit" "mean depth" -- --early-exit 0.5,0.5,0.5
ok "speculative" "same output as the full model: yes" -- --speculative
ok "speculative, draft exit 4" "draft exit 4 of 8" -- --speculative --draft-exit 4 --max-draft 3
ok "speculative sampling" "sampled" -- --speculative --temperature 0.7 --seed 1

# bad NAME EXPECTED-SUBSTRING -- ARGS...: non-zero exit, exactly one stderr line holding it.
bad() {
  local name="$1" want="$2"
  shift 3
  "$cli" generate --checkpoint "$run" --prompt "x" "$@" >"$work/out" 2>"$work/err"
  local rc=$? lines
  lines=$(wc -l <"$work/err")
  if [[ $rc -eq 0 || $lines -ne 1 ]] || ! grep -qF -- "$want" "$work/err"; then
    fail "$name (rc=$rc, $lines stderr lines)"
  else
    echo "ok   $name: $(cat "$work/err")"
  fi
}
bad "thresholds count" "needs 3 thresholds" -- --early-exit 0.9
bad "threshold value" "numbers >= 0" -- --early-exit 0.9,x,0.1
bad "draft exit" "--draft-exit must be" -- --speculative --draft-exit 8
bad "both modes" "not both" -- --speculative --early-exit 0.9,0.9,0.9
bad "negative temperature" "temperature" -- --temperature -1
bad "draft exit alone" "--draft-exit requires --speculative" -- --draft-exit 2
bad "zero bytes" "--max-new: must be an integer in [1, 1000000]" -- --max-new 0

# Training faults. lm NAME ARGS...: a short run of its own, stderr in $work/err.
lm_args=(--config configs/fortunes-llama.toml --set data.dir="$work/corpus" --set data.context=32 --set data.batch_size=2
         --set data.test_limit=4 --set optimizer.warmup_steps=1 --set train.log_every=1)
lm() {
  local dir="$work/$1"
  shift
  "$cli" train "${lm_args[@]}" --out "$dir" "$@" >"$work/out" 2>"$work/err"
}
lm again --set train.max_steps=4 --set train.checkpoint_every=2 && lm again --set train.max_steps=4
rc=$?
[[ $rc -eq 1 ]] && grep -q "already holds a run" "$work/err" && echo "ok   a second run into the same folder: $(cat "$work/err")" \
  || fail "a second run into the same folder (rc=$rc)"
SN_FAILPOINT=nan-grad:2 lm skip --set train.max_steps=4
if [[ $? -eq 0 ]] && grep -q "non-finite gradient at step 2: step skipped" "$work/err" &&
    grep -q '"step": 4, .*"skipped_steps": 1}' "$work/skip/metrics.jsonl"; then
  echo "ok   nonfinite=skip: $(cat "$work/err")"
else fail "nonfinite=skip"; fi
SN_FAILPOINT=nan-grad:3 lm stop --set train.max_steps=4 --set train.checkpoint_every=2 --set train.nonfinite=stop
rc=$?
if [[ $rc -eq 1 && $(wc -l <"$work/err") -eq 1 ]] && grep -q "non-finite gradient at step 3; stopped: the last good checkpoint .*(step 2)" "$work/err"; then
  echo "ok   nonfinite=stop: $(cat "$work/err")"
else fail "nonfinite=stop (rc=$rc)"; fi
# SIGTERM: the step finishes, a checkpoint is written, exit 128 + 15; --resume continues from it.
"$cli" train "${lm_args[@]}" --out "$work/term" --set train.max_steps=100000 >"$work/out" 2>"$work/err" &
pid=$!  # the process itself, so that the signal reaches it
for _ in $(seq 100); do grep -q "^step 3/" "$work/out" 2>/dev/null && break; sleep 0.2; done
kill -TERM "$pid"
wait "$pid"
rc=$?
saved=$(grep -o "stopped by SIGTERM after step [0-9]*" "$work/err" | grep -o "[0-9]*$")
if [[ $rc -eq 143 && -n "$saved" ]] && grep -q "; saved .*checkpoint.safetensors" "$work/err" &&
    lm term --resume --set train.max_steps=$((saved + 2)) && grep -q "^step $((saved + 2))/$((saved + 2)) " "$work/out"; then
  echo "ok   SIGTERM after step $saved: saved, and resumed to step $((saved + 2))"
else fail "SIGTERM (rc=$rc)"; fi

echo "$failures failed"
[[ $failures -eq 0 ]]
