// train/lm.h — training and evaluating the sorted language model (W4) on a byte corpus.
#pragma once

#include <string>
#include <vector>

#include "models/llama.h"
#include "train/config.h"
#include "train/evaluate.h"

namespace sn {

// `sortednet train` for data.dataset = "text": batches of data.batch_size windows of data.context
// bytes; train.objective = "soft" (the mean of every exit's loss, one pass) or "sampled" (the
// full model and one random shallower exit per step, two passes). Logs to OUT/metrics.jsonl,
// checkpoints to OUT/checkpoint.safetensors, evaluates every exit on the held-out bytes
// (OUT/eval.csv, OUT/eval.svg). Returns the evaluation rows.
std::vector<EvalRow> train_language_model(const TrainConfig& config, const std::string& out_dir, bool resume);

// Per exit: next-byte accuracy, validation loss (nats per byte) over the held-out windows (at
// most data.test_limit, 0: all), and latency = milliseconds per token of greedy decoding.
// Then one row per early-exit policy (thresholds, one per exit but the last; see DecodeOptions):
// each position is answered by the first exit sure enough of it, with the mean FLOPs per token
// of the depths chosen, and the latency of greedy early-exit decoding.
std::vector<EvalRow> evaluate_language_model(SortedLlama& model, const std::vector<uint8_t>& valid,
                                             const TrainConfig& config,
                                             const std::vector<std::vector<double>>& early_exit = {});

}  // namespace sn
