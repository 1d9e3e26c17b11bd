// train/data.h — datasets in memory and a prefetching, resumable batch loader.
//
// Readers: Fashion-MNIST / MNIST IDX files (gzip or plain) and CIFAR-10 binary batches. Each
// rejects a malformed file with one clear line naming the file and the problem, and never
// allocates more than the file can hold.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/rng.h"
#include "core/tensor.h"

namespace sn {

struct Dataset {
  Tensor images;  // [N, C, H, W] f32, normalised
  Tensor labels;  // [N] i64
  int64_t classes = 10;
  std::vector<float> black;  // per channel: the normalised value of a black pixel (padding)
  int64_t size() const { return labels.defined() ? labels.size(0) : 0; }
  Dataset head(int64_t n) const;  // the first n examples (views)
};

// {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz] in `dir`.
Dataset load_fashion_mnist(const std::string& dir, bool train);
// One IDX image file (u8, [N, H, W]) and its label file (u8, [N]).
Dataset load_idx(const std::string& images_path, const std::string& labels_path);
// CIFAR-10 binary batches: records of 1 label byte + 3×32×32 pixel bytes.
Dataset load_cifar10(const std::vector<std::string>& files);
// The same parsers over bytes already in memory (decompressed); the names appear in errors.
Dataset parse_idx(const std::vector<uint8_t>& images, const std::vector<uint8_t>& labels,
                  const std::string& images_name, const std::string& labels_name);
Dataset parse_cifar10(const std::vector<std::vector<uint8_t>>& files, const std::vector<std::string>& names);

struct Augment {
  int64_t crop_padding = 0;  // random crop of the image padded by this many zero pixels
  bool flip = false;         // random horizontal flip
};

struct Batch {
  Tensor images, labels;
  int64_t epoch = 0, index = 0;  // which batch of which epoch
};

// Shuffled batches in epoch order. Batch (epoch, i) depends only on (seed, epoch, i), so a
// run resumes exactly from any batch. A background thread prepares the next batches.
// Data parallel: with shards > 1 each batch is this shard's equal slice of the global batch of
// `batch_size` examples (the same examples and augmentations, whatever the number of shards).
class BatchLoader {
 public:
  BatchLoader(const Dataset& data, int64_t batch_size, bool shuffle, Augment augment, uint64_t seed,
              int64_t prefetch = 2, int64_t shard = 0, int64_t shards = 1);
  ~BatchLoader();
  BatchLoader(const BatchLoader&) = delete;
  BatchLoader& operator=(const BatchLoader&) = delete;

  int64_t batches_per_epoch() const { return batches_per_epoch_; }
  // Batches made from now on (every batch after the next seek) live in pinned host memory, so
  // that Tensor::to(gpu, true) copies them without the host waiting (ordinary memory when no
  // GPU backend is in use).
  void set_pinned(bool pinned) { pinned_.store(pinned); }
  // Restarts the stream at batch `index` of `epoch`.
  void seek(int64_t epoch, int64_t index);
  Batch next();
  // Batch (epoch, index) computed in the calling thread.
  Batch make(int64_t epoch, int64_t index) const;

 private:
  void worker();
  void stop();
  // The epoch's order of examples (a Fisher-Yates shuffle from the (seed, epoch) stream), made
  // once per epoch and shared by its batches; null when not shuffling (the identity).
  std::shared_ptr<const std::vector<int64_t>> order(int64_t epoch) const;

  const Dataset& data_;
  int64_t batch_size_, batches_per_epoch_;
  int64_t shard_ = 0, shards_ = 1;
  bool shuffle_;
  Augment augment_;
  uint64_t seed_;
  int64_t prefetch_;
  std::atomic<bool> pinned_{false};

  mutable std::mutex order_mu_;  // the worker and make() callers share the latest epoch's order
  mutable int64_t order_epoch_ = -1;
  mutable std::shared_ptr<const std::vector<int64_t>> order_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Batch> ready_;
  int64_t next_epoch_ = 0, next_index_ = 0;  // what the worker makes next
  uint64_t generation_ = 0;                   // bumped by seek: batches begun before it are dropped
  std::exception_ptr failure_;                // the worker's error, rethrown by next()
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace sn
