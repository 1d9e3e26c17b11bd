// train/data.cpp — IDX and CIFAR-10 readers, augmentation, the prefetching loader.
#include "train/data.h"

#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <memory>

#include "autograd/ops.h"
#include "core/failpoint.h"

namespace sn {
namespace {

constexpr size_t kMaxFileBytes = size_t(2) << 30;  // no dataset file of ours is larger

// The whole (possibly gzip-compressed) file, or an sn::Error naming it.
std::vector<uint8_t> read_file(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  SN_CHECK(f != nullptr, "data", "cannot open '", path, "'");
  std::unique_ptr<gzFile_s, int (*)(gzFile)> guard(f, gzclose);
  std::vector<uint8_t> out;
  uint8_t buf[1 << 16];
  while (true) {
    int n = gzread(f, buf, sizeof(buf));
    if (n < 0) {
      int errnum = 0;
      const char* msg = gzerror(f, &errnum);
      fail("data", "'" + path + "' is not readable (" + std::string(msg ? msg : "corrupt data") + ")");
    }
    if (n == 0) break;
    out.insert(out.end(), buf, buf + n);
    SN_CHECK(out.size() <= kMaxFileBytes, "data", "'", path, "' is larger than ", kMaxFileBytes, " bytes");
  }
  return out;
}

uint32_t be32(const std::vector<uint8_t>& b, size_t at) {
  return (uint32_t(b[at]) << 24) | (uint32_t(b[at + 1]) << 16) | (uint32_t(b[at + 2]) << 8) | b[at + 3];
}

// Parses an IDX header of u8 data with `rank` dims; returns the dims.
std::vector<int64_t> idx_dims(const std::vector<uint8_t>& b, int rank, const std::string& path) {
  const size_t header = 4 + 4 * size_t(rank);
  SN_CHECK(b.size() >= header, "data", "'", path, "' is too short for an IDX header (", b.size(), " bytes)");
  const uint32_t magic = be32(b, 0);
  SN_CHECK(magic == 0x00000800u + uint32_t(rank), "data", "'", path, "' is not an IDX u8 file of rank ",
           rank, " (magic 0x", std::hex, magic, ")");
  std::vector<int64_t> dims;
  uint64_t total = 1;
  for (int i = 0; i < rank; ++i) {
    dims.push_back(be32(b, 4 + 4 * size_t(i)));
    total *= uint64_t(dims.back());
    SN_CHECK(total <= kMaxFileBytes, "data", "'", path, "' declares more data than any file holds");
  }
  SN_CHECK(b.size() == header + total, "data", "'", path, "' holds ", b.size() - header,
           " data bytes but its header declares ", total, " (truncated or padded file)");
  return dims;
}

// u8 pixels → normalised f32 [N, C, H, W].
Tensor normalise(const uint8_t* pixels, int64_t n, int64_t c, int64_t h, int64_t w,
                 const std::vector<float>& mean, const std::vector<float>& std) {
  Tensor out = empty({n, c, h, w});
  float* o = out.data<float>();
  const int64_t plane = h * w;
  for (int64_t i = 0; i < n * c; ++i) {
    const int64_t ch = i % c;
    const float scale = 1.f / (255.f * std[size_t(ch)]), shift = -mean[size_t(ch)] / std[size_t(ch)];
    for (int64_t p = 0; p < plane; ++p) o[i * plane + p] = float(pixels[i * plane + p]) * scale + shift;
  }
  return out;
}

}  // namespace

Dataset Dataset::head(int64_t n) const {
  Dataset d = *this;
  n = std::min(n, size());
  d.images = images.narrow(0, 0, n);
  d.labels = labels.narrow(0, 0, n);
  return d;
}

Dataset load_idx(const std::string& images_path, const std::string& labels_path) {
  return parse_idx(read_file(images_path), read_file(labels_path), images_path, labels_path);
}

Dataset parse_idx(const std::vector<uint8_t>& ib, const std::vector<uint8_t>& lb, const std::string& images_path,
                  const std::string& labels_path) {
  std::vector<int64_t> idims = idx_dims(ib, 3, images_path), ldims = idx_dims(lb, 1, labels_path);
  SN_CHECK(idims[0] == ldims[0], "data", "'", images_path, "' has ", idims[0], " images but '",
           labels_path, "' has ", ldims[0], " labels");
  SN_CHECK(idims[0] > 0 && idims[1] > 0 && idims[2] > 0, "data", "'", images_path, "' is empty");
  Dataset d;
  d.images = normalise(ib.data() + 16, idims[0], 1, idims[1], idims[2], {0.2860f}, {0.3530f});
  d.black = {-0.2860f / 0.3530f};
  std::vector<int64_t> labels(lb.begin() + 8, lb.end());
  for (size_t i = 0; i < labels.size(); ++i)
    SN_CHECK(labels[i] < d.classes, "data", "'", labels_path, "' has label ", labels[i], " at ", i,
             " (expected 0..", d.classes - 1, ")");
  d.labels = from_vector(labels, {int64_t(labels.size())});
  return d;
}

Dataset load_fashion_mnist(const std::string& dir, bool train) {
  const std::string prefix = dir + "/" + (train ? "train" : "t10k");
  auto pick = [](const std::string& base) {
    gzFile f = gzopen((base + ".gz").c_str(), "rb");
    if (f) {
      gzclose(f);
      return base + ".gz";
    }
    return base;
  };
  return load_idx(pick(prefix + "-images-idx3-ubyte"), pick(prefix + "-labels-idx1-ubyte"));
}

Dataset load_cifar10(const std::vector<std::string>& files) {
  std::vector<std::vector<uint8_t>> contents;
  for (const std::string& path : files) contents.push_back(read_file(path));
  return parse_cifar10(contents, files);
}

Dataset parse_cifar10(const std::vector<std::vector<uint8_t>>& files, const std::vector<std::string>& names) {
  constexpr size_t kRecord = 1 + 3 * 32 * 32;
  std::vector<uint8_t> pixels;
  std::vector<int64_t> labels;
  for (size_t f = 0; f < files.size(); ++f) {
    const std::vector<uint8_t>& b = files[f];
    const std::string& path = names.at(f);
    SN_CHECK(!b.empty() && b.size() % kRecord == 0, "data", "'", path, "' is ", b.size(),
             " bytes, not a whole number of CIFAR-10 records (", kRecord, " bytes each)");
    for (size_t r = 0; r < b.size(); r += kRecord) {
      SN_CHECK(b[r] < 10, "data", "'", path, "' record ", r / kRecord, " has label ", int(b[r]));
      labels.push_back(b[r]);
      pixels.insert(pixels.end(), b.begin() + int64_t(r) + 1, b.begin() + int64_t(r + kRecord));
    }
  }
  SN_CHECK(!labels.empty(), "data", "no CIFAR-10 files given");
  Dataset d;
  const int64_t n = int64_t(labels.size());
  const std::vector<float> mean{0.4914f, 0.4822f, 0.4465f}, std{0.2470f, 0.2435f, 0.2616f};
  d.images = normalise(pixels.data(), n, 3, 32, 32, mean, std);
  for (size_t c = 0; c < 3; ++c) d.black.push_back(-mean[c] / std[c]);
  d.labels = from_vector(labels, {n});
  return d;
}

BatchLoader::BatchLoader(const Dataset& data, int64_t batch_size, bool shuffle, Augment augment,
                         uint64_t seed, int64_t prefetch, int64_t shard, int64_t shards)
    : data_(data), batch_size_(batch_size), shard_(shard), shards_(shards), shuffle_(shuffle), augment_(augment),
      seed_(seed), prefetch_(prefetch) {
  SN_CHECK(batch_size >= 1 && batch_size <= data.size(), "data", "batch size ", batch_size,
           " does not fit a dataset of ", data.size(), " examples");
  SN_CHECK(shards >= 1 && shard >= 0 && shard < shards && batch_size % shards == 0, "data", "batch size ", batch_size,
           " does not split into ", shards, " equal shards (make it a multiple of the number of ranks)");
  batches_per_epoch_ = data.size() / batch_size;  // the last partial batch is dropped
  if (prefetch_ > 0) thread_ = std::thread(&BatchLoader::worker, this);
}

BatchLoader::~BatchLoader() { stop(); }

void BatchLoader::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void BatchLoader::seek(int64_t epoch, int64_t index) {
  std::lock_guard<std::mutex> lock(mu_);
  ready_.clear();
  ++generation_;
  next_epoch_ = epoch;
  next_index_ = index;
  cv_.notify_all();
}

Batch BatchLoader::next() {
  if (prefetch_ == 0) {
    Batch b = make(next_epoch_, next_index_);
    if (++next_index_ == batches_per_epoch_) next_index_ = 0, ++next_epoch_;
    return b;
  }
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return !ready_.empty() || failure_; });
  if (ready_.empty()) std::rethrow_exception(failure_);
  Batch b = std::move(ready_.front());
  ready_.pop_front();
  cv_.notify_all();
  return b;
}

void BatchLoader::worker() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    cv_.wait(lock, [&] { return stopping_ || int64_t(ready_.size()) < prefetch_; });
    if (stopping_) return;
    const int64_t epoch = next_epoch_, index = next_index_;
    const uint64_t generation = generation_;
    lock.unlock();
    Batch b;
    try {
      b = make(epoch, index);
    } catch (...) {  // e.g. out of (pinned) memory: the consumer sees it at its next batch
      lock.lock();
      failure_ = std::current_exception();
      cv_.notify_all();
      return;
    }
    lock.lock();
    if (generation != generation_) continue;  // a seek happened meanwhile
    ready_.push_back(std::move(b));
    if (++next_index_ == batches_per_epoch_) next_index_ = 0, ++next_epoch_;
    cv_.notify_all();
  }
}

std::shared_ptr<const std::vector<int64_t>> BatchLoader::order(int64_t epoch) const {
  if (!shuffle_) return nullptr;
  std::lock_guard<std::mutex> lock(order_mu_);
  if (!order_ || order_epoch_ != epoch) {
    const int64_t n = data_.size();
    auto shuffled = std::make_shared<std::vector<int64_t>>(static_cast<size_t>(n));
    std::vector<int64_t>& o = *shuffled;
    for (int64_t i = 0; i < n; ++i) o[size_t(i)] = i;
    Generator g = Generator(seed_).split(uint64_t(epoch));
    for (int64_t i = n - 1; i > 0; --i) std::swap(o[size_t(i)], o[g.below(uint64_t(i + 1))]);
    order_ = std::move(shuffled);
    order_epoch_ = epoch;
  }
  return order_;
}

Batch BatchLoader::make(int64_t epoch, int64_t index) const {
  if (failpoint("loader-batch")) fail("data", "injected failure while making a batch (SN_FAILPOINT)");  // fault tests
  const std::shared_ptr<const std::vector<int64_t>> shuffled = order(epoch);
  const Shape& s = data_.images.sizes();
  const int64_t C = s[1], H = s[2], W = s[3], plane = H * W;
  const int64_t rows = batch_size_ / shards_, first = shard_ * rows;
  Batch b;
  b.epoch = epoch;
  b.index = index;
  const bool pinned = pinned_.load();
  b.images = pinned ? empty_pinned({rows, C, H, W}) : empty({rows, C, H, W});
  b.labels = pinned ? empty_pinned({rows}, DType::i64) : empty({rows}, DType::i64);
  int64_t* labels = b.labels.data<int64_t>();
  const Tensor images = data_.images.contiguous(), all_labels = data_.labels.contiguous();  // alive while read
  const float* src = images.data<float>();
  const int64_t* lab = all_labels.data<int64_t>();
  float* dst = b.images.data<float>();
  Generator aug = Generator(seed_ ^ 0xa5a5a5a5u).split(uint64_t(epoch) * 1000003u + uint64_t(index));
  const int64_t pad = augment_.crop_padding;
  for (int64_t jg = 0; jg < batch_size_; ++jg) {
    // Every shard draws the whole batch's augmentations, so its slice matches the global batch.
    const int64_t dy = pad > 0 ? int64_t(aug.below(uint64_t(2 * pad + 1))) - pad : 0;
    const int64_t dx = pad > 0 ? int64_t(aug.below(uint64_t(2 * pad + 1))) - pad : 0;
    const bool flip = augment_.flip && (aug.next_u32() & 1u);
    const int64_t j = jg - first;
    if (j < 0 || j >= rows) continue;
    const int64_t at = index * batch_size_ + jg, ex = shuffled ? (*shuffled)[size_t(at)] : at;
    labels[j] = lab[ex];
    for (int64_t c = 0; c < C; ++c) {
      const float* in = src + (ex * C + c) * plane;
      float* out = dst + (j * C + c) * plane;
      const float background = c < int64_t(data_.black.size()) ? data_.black[size_t(c)] : 0.f;
      for (int64_t y = 0; y < H; ++y)
        for (int64_t x = 0; x < W; ++x) {
          const int64_t sy = y + dy, sx = flip ? (W - 1 - x) + dx : x + dx;
          out[y * W + x] = (sy >= 0 && sy < H && sx >= 0 && sx < W) ? in[sy * W + sx] : background;
        }
    }
  }
  return b;
}

}  // namespace sn
