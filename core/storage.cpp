// core/storage.cpp — storage lifetime.
#include "core/storage.h"

#include "core/allocator.h"

namespace sn {

Storage::Storage(size_t nbytes, Device device)
    : data_(allocator_for(device).allocate(nbytes)), nbytes_(nbytes), device_(device) {}

Storage::Storage(void* data, size_t nbytes, Device device, std::function<void(void*)> release)
    : data_(data), nbytes_(nbytes), device_(device), release_(std::move(release)) {}

std::shared_ptr<Storage> Storage::pinned_host(size_t nbytes) {
  Allocator* pinned = pinned_host_allocator();
  if (!pinned) return std::make_shared<Storage>(nbytes, Device::cpu());
  auto storage = std::make_shared<Storage>(pinned->allocate(nbytes), nbytes, Device::cpu(),
                                           [pinned, nbytes](void* p) { pinned->deallocate(p, nbytes); });
  storage->pinned_ = true;
  return storage;
}

Storage::~Storage() {
  if (release_) {
    release_(data_);
  } else {
    allocator_for(device_).deallocate(data_, nbytes_);
  }
}

}  // namespace sn
