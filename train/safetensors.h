// train/safetensors.h — the safetensors format (the ecosystem's checkpoint format): an 8-byte
// little-endian header length, a JSON header naming each tensor's dtype, shape and byte range,
// then the raw data. Writes are atomic (temporary file, fsync, rename) and record a CRC-32 of
// every tensor in the metadata ("crc32.<name>"); reads validate every field and every checksum
// and refuse a bad file with one line naming the problem.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <string_view>

#include "core/tensor.h"

namespace sn {

struct SafetensorsFile {
  std::map<std::string, Tensor> tensors;
  std::map<std::string, std::string> metadata;
};

void save_safetensors(const std::string& path, const std::map<std::string, Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata = {});
// Which tensors to read: the others' entries are checked like every entry, their bytes are not
// read (nor their checksums verified). An empty filter reads them all.
using TensorFilter = std::function<bool(const std::string& name)>;
SafetensorsFile load_safetensors(const std::string& path, const TensorFilter& wanted = {});
// The same from bytes in memory; `path` names them in errors.
SafetensorsFile parse_safetensors(std::string_view bytes, const std::string& path);
// Only the metadata: the header is read and checked, the tensors' bytes are not read (nor their
// checksums verified; load_safetensors does that).
std::map<std::string, std::string> load_safetensors_metadata(const std::string& path);

// Writes `bytes` to path atomically: path.tmp, fsync, rename over path, fsync the directory.
void write_file_atomically(const std::string& path, const std::string& bytes);

}  // namespace sn
