// train/text_data.h — a byte-level text corpus for the language models (W4): every regular file
// under a path (or the path itself), in name order, the last part held out for validation.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/rng.h"
#include "core/tensor.h"

namespace sn {

struct TextCorpus {
  std::vector<uint8_t> train, valid;
  int64_t files = 0;
};

// Reads `path` (a file, or a folder read recursively; symbolic links and fortune's binary `.dat`
// indexes are skipped), files joined by a newline; the last `held_out` fraction is `valid`.
// A missing path, an unreadable file or too little text is an sn::Error.
TextCorpus load_text(const std::string& path, double held_out, int64_t context);

// B windows of T + 1 bytes from `bytes` starting at positions drawn from `gen`:
// tokens [B, T] and their next bytes, targets [B, T] (i64).
std::pair<Tensor, Tensor> text_batch(const std::vector<uint8_t>& bytes, int64_t B, int64_t T, Generator& gen);

// Window w of the non-overlapping windows of T + 1 bytes (evaluation), as [1, T] each.
std::pair<Tensor, Tensor> text_window(const std::vector<uint8_t>& bytes, int64_t w, int64_t T);
int64_t text_windows(const std::vector<uint8_t>& bytes, int64_t T);

}  // namespace sn
