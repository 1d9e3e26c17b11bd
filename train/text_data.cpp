// train/text_data.cpp — the byte corpus (see text_data.h).
#include "train/text_data.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "autograd/ops.h"

namespace sn {

namespace fs = std::filesystem;

TextCorpus load_text(const std::string& path, double held_out, int64_t context) {
  std::error_code ec;
  SN_CHECK(fs::exists(path, ec), "text", "no such file or folder: ", path);
  std::vector<std::string> files;
  if (fs::is_directory(path, ec)) {
    for (auto it = fs::recursive_directory_iterator(path, ec); !ec && it != fs::recursive_directory_iterator();
         it.increment(ec)) {
      const auto status = it->symlink_status(ec);
      if (fs::is_regular_file(status) && it->path().extension() != ".dat") files.push_back(it->path().string());
    }
    SN_CHECK(!ec, "text", "cannot list ", path, ": ", ec.message());
    std::sort(files.begin(), files.end());
  } else {
    files.push_back(path);
  }
  TextCorpus c;
  std::vector<uint8_t> all;
  for (const std::string& f : files) {
    std::ifstream in(f, std::ios::binary);
    SN_CHECK(in.good(), "text", "cannot read ", f);
    std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (!all.empty()) all.push_back('\n');
    all.insert(all.end(), bytes.begin(), bytes.end());
    ++c.files;
  }
  SN_CHECK(held_out > 0 && held_out < 1, "text", "the held-out fraction must lie in (0, 1), got ", held_out);
  const size_t split = size_t(double(all.size()) * (1.0 - held_out));
  c.train.assign(all.begin(), all.begin() + int64_t(split));
  c.valid.assign(all.begin() + int64_t(split), all.end());
  SN_CHECK(int64_t(c.train.size()) > context + 1 && int64_t(c.valid.size()) > context + 1, "text", path, " holds ",
           all.size(), " bytes: too little for windows of ", context + 1, " bytes in both parts");
  return c;
}

std::pair<Tensor, Tensor> text_batch(const std::vector<uint8_t>& bytes, int64_t B, int64_t T, Generator& gen) {
  SN_CHECK(int64_t(bytes.size()) > T + 1, "text", "windows of ", T + 1, " bytes from ", bytes.size());
  std::vector<int64_t> x(size_t(B * T)), y(size_t(B * T));
  for (int64_t b = 0; b < B; ++b) {
    const size_t start = size_t(gen.below(uint64_t(bytes.size()) - uint64_t(T)));
    for (int64_t t = 0; t < T; ++t) {
      x[size_t(b * T + t)] = bytes[start + size_t(t)];
      y[size_t(b * T + t)] = bytes[start + size_t(t) + 1];
    }
  }
  return {from_vector(x, {B, T}), from_vector(y, {B, T})};
}

int64_t text_windows(const std::vector<uint8_t>& bytes, int64_t T) { return (int64_t(bytes.size()) - 1) / T; }

std::pair<Tensor, Tensor> text_window(const std::vector<uint8_t>& bytes, int64_t w, int64_t T) {
  std::vector<int64_t> x(static_cast<size_t>(T)), y(static_cast<size_t>(T));
  for (int64_t t = 0; t < T; ++t) {
    x[size_t(t)] = bytes[size_t(w * T + t)];
    y[size_t(t)] = bytes[size_t(w * T + t + 1)];
  }
  return {from_vector(x, {1, T}), from_vector(y, {1, T})};
}

}  // namespace sn
