// core/storage.h — a block of device memory shared by a tensor and all of its views.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>

#include "core/device.h"

namespace sn {

class Storage {
 public:
  // Allocates nbytes from the device's allocator.
  Storage(size_t nbytes, Device device);
  // Wraps memory owned elsewhere; `release` is called when the storage dies.
  Storage(void* data, size_t nbytes, Device device, std::function<void(void*)> release);
  // Host memory from the pinned-host allocator; ordinary host memory when none is registered
  // (no accelerator), so code that asks for pinned staging runs unchanged on a CPU-only build.
  static std::shared_ptr<Storage> pinned_host(size_t nbytes);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }
  // Page-locked host memory (see pinned_host).
  bool pinned() const { return pinned_; }

  // Bumped by every in-place write; autograd compares it with the version it saved.
  uint64_t version() const { return version_.load(std::memory_order_relaxed); }
  void bump_version() { version_.fetch_add(1, std::memory_order_relaxed); }

 private:
  void* data_ = nullptr;
  size_t nbytes_ = 0;
  Device device_;
  std::function<void(void*)> release_;  // empty: return to the device allocator
  bool pinned_ = false;
  std::atomic<uint64_t> version_{0};
};

}  // namespace sn
