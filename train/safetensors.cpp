// train/safetensors.cpp — safetensors reader and writer.
#include "train/safetensors.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <set>
#include <vector>
#include <zlib.h>

#include "autograd/ops.h"
#include "core/failpoint.h"

namespace sn {
namespace {

constexpr uint64_t kMaxHeader = uint64_t(100) << 20;
constexpr uint64_t kMaxFile = uint64_t(64) << 30;
constexpr const char* kChecksumPrefix = "crc32.";

uint32_t crc32_of(const Tensor& t) {
  const uint64_t bytes = uint64_t(t.numel()) * element_size(t.dtype());
  uLong crc = ::crc32(0L, Z_NULL, 0);
  const auto* p = static_cast<const Bytef*>(t.data_ptr());
  for (uint64_t done = 0; done < bytes;) {  // zlib takes 32-bit lengths
    const uInt n = uInt(std::min<uint64_t>(bytes - done, uint64_t(1) << 30));
    crc = ::crc32(crc, p + done, n);
    done += n;
  }
  return uint32_t(crc);
}

std::string hex32(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "%08x", v);
  return buf;
}

// Files we write carry "crc32.<name>" for every tensor; a file with any such key must match all.
// `names` are all the file's tensors; only those read (file.tensors) can be checked.
void verify_checksums(const SafetensorsFile& file, const std::set<std::string>& names, const std::string& path) {
  bool any = false;
  for (const auto& [key, value] : file.metadata) {
    if (key.rfind(kChecksumPrefix, 0) != 0) continue;
    any = true;
    const std::string name = key.substr(std::strlen(kChecksumPrefix));
    SN_CHECK(names.count(name), "load", "'", path, "' has a checksum for tensor '", name,
             "' but no such tensor (corrupt file)");
    auto t = file.tensors.find(name);
    if (t == file.tensors.end()) continue;  // not read
    const std::string actual = hex32(crc32_of(t->second));
    SN_CHECK(value == actual, "load", "'", path, "' tensor '", name, "' fails its checksum (stored ", value,
             ", computed ", actual, "): the file is corrupt");
  }
  if (!any) return;
  for (const std::string& name : names)
    SN_CHECK(file.metadata.count(kChecksumPrefix + name), "load", "'", path, "' tensor '", name,
             "' has no checksum (corrupt file)");
}

const char* dtype_tag(DType t) {
  switch (t) {
    case DType::f32: return "F32";
    case DType::bf16: return "BF16";
    case DType::i32: return "I32";
    case DType::i64: return "I64";
  }
  return "?";
}

bool parse_dtype(const std::string& tag, DType& out) {
  if (tag == "F32") out = DType::f32;
  else if (tag == "BF16") out = DType::bf16;
  else if (tag == "I32") out = DType::i32;
  else if (tag == "I64") out = DType::i64;
  else return false;
  return true;
}

std::string parent_dir(const std::string& path) {
  auto slash = path.rfind('/');
  return slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
}

}  // namespace

void write_file_atomically(const std::string& path, const std::string& bytes) {
  const std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  SN_CHECK(fd >= 0, "save", "cannot create '", tmp, "': ", std::strerror(errno));
  size_t done = 0;
  bool crash_checked = false;
  while (done < bytes.size()) {
    if (!crash_checked && done >= bytes.size() / 2) {  // tests crash here: half a file on disk
      crash_checked = true;
      crash_point("checkpoint-write");
    }
    const size_t chunk = crash_checked ? bytes.size() - done : bytes.size() / 2 - done;
    ssize_t n = ::write(fd, bytes.data() + done, chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      fail("save", "cannot write '" + tmp + "': " + std::strerror(err));
    }
    done += size_t(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    ::unlink(tmp.c_str());
    fail("save", "cannot flush '" + tmp + "' to disk");
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());  // nothing left behind
    fail("save", "cannot rename '" + tmp + "' to '" + path + "': " + std::strerror(err));
  }
  crash_point("checkpoint-rename");
  int dir = ::open(parent_dir(path).c_str(), O_RDONLY | O_DIRECTORY);
  if (dir >= 0) {  // make the rename itself durable
    ::fsync(dir);
    ::close(dir);
  }
}

void save_safetensors(const std::string& path, const std::map<std::string, Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  std::map<std::string, std::string> meta = metadata;
  std::vector<Tensor> packed;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {  // std::map: sorted names, a deterministic file
    SN_CHECK(name != "__metadata__", "save", "a tensor cannot be named __metadata__");
    Tensor c = t.to(Device::cpu()).contiguous().detach();
    const uint64_t bytes = uint64_t(c.numel()) * element_size(c.dtype());
    header[name] = {{"dtype", dtype_tag(c.dtype())}, {"shape", c.sizes()}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    meta[kChecksumPrefix + name] = hex32(crc32_of(c));
    packed.push_back(c);
  }
  header["__metadata__"] = meta;
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // keep the data 8-byte aligned
  std::string out(8, '\0');
  const uint64_t n = text.size();
  for (int i = 0; i < 8; ++i) out[size_t(i)] = char((n >> (8 * i)) & 0xff);
  out += text;
  out.reserve(out.size() + offset);
  for (const Tensor& c : packed)
    out.append(static_cast<const char*>(c.data_ptr()), size_t(c.numel()) * element_size(c.dtype()));
  write_file_atomically(path, out);
}

namespace {

nlohmann::json parse_header(std::string_view text, const std::string& path) {
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(text);
  } catch (const std::exception& e) {
    fail("load", "'" + path + "' has a malformed JSON header");
  }
  SN_CHECK(header.is_object(), "load", "'", path, "' header is not a JSON object");
  return header;
}

std::map<std::string, std::string> metadata_of(const nlohmann::json& header, const std::string& path) {
  std::map<std::string, std::string> metadata;
  const auto it = header.find("__metadata__");
  if (it == header.end()) return metadata;
  SN_CHECK(it->is_object(), "load", "'", path, "' metadata is not an object");
  for (auto m = it->begin(); m != it->end(); ++m) {
    SN_CHECK(m.value().is_string(), "load", "'", path, "' metadata '", m.key(), "' is not a string");
    metadata[m.key()] = m.value().get<std::string>();
  }
  return metadata;
}

}  // namespace

namespace {

// Where a file's bytes come from: memory (parse_safetensors) or the file itself, read piece by
// piece straight into the tensors that want them (no copy of the whole file).
class ByteSource {
 public:
  virtual ~ByteSource() = default;
  virtual uint64_t size() const = 0;
  virtual void read(uint64_t offset, uint64_t n, void* dst) const = 0;  // [offset, offset + n) lies within size()
};

class MemorySource final : public ByteSource {
 public:
  explicit MemorySource(std::string_view bytes) : bytes_(bytes) {}
  uint64_t size() const override { return bytes_.size(); }
  void read(uint64_t offset, uint64_t n, void* dst) const override {
    if (n > 0) std::memcpy(dst, bytes_.data() + offset, size_t(n));
  }

 private:
  std::string_view bytes_;
};

class FileSource final : public ByteSource {
 public:
  explicit FileSource(const std::string& path) : path_(path) {
    // O_NONBLOCK: a FIFO is refused below instead of blocking the open (no effect on files).
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    SN_CHECK(fd_ >= 0, "load", "cannot open '", path, "': ", std::strerror(errno));
    struct stat st {};
    const bool stat_ok = ::fstat(fd_, &st) == 0;
    if (!stat_ok || !S_ISREG(st.st_mode)) {
      const std::string why = stat_ok ? "not a regular file" : std::strerror(errno);
      ::close(fd_);
      fail("load", "cannot read '" + path + "': " + why);
    }
    size_ = uint64_t(st.st_size);
  }
  ~FileSource() override { ::close(fd_); }
  FileSource(const FileSource&) = delete;
  FileSource& operator=(const FileSource&) = delete;

  uint64_t size() const override { return size_; }
  void read(uint64_t offset, uint64_t n, void* dst) const override {
    char* p = static_cast<char*>(dst);
    while (n > 0) {
      const ssize_t got = ::pread(fd_, p, size_t(std::min<uint64_t>(n, uint64_t(1) << 30)), off_t(offset));
      if (got < 0 && errno == EINTR) continue;
      SN_CHECK(got >= 0, "load", "cannot read '", path_, "': ", std::strerror(errno));
      SN_CHECK(got > 0, "load", "cannot read '", path_, "': it was truncated while being read");
      p += got;
      offset += uint64_t(got);
      n -= uint64_t(got);
    }
  }

 private:
  std::string path_;
  int fd_ = -1;
  uint64_t size_ = 0;
};

struct Header {
  nlohmann::json json;
  uint64_t data_begin = 0, data_size = 0;  // where the tensors' bytes lie in the file
};

Header read_header(const ByteSource& src, const std::string& path) {
  const uint64_t size = src.size();
  SN_CHECK(size <= kMaxFile, "load", "'", path, "' is ", size, " bytes, more than the ", kMaxFile,
           " a checkpoint may have");
  SN_CHECK(size >= 8, "load", "'", path, "' is too short to be safetensors (", size, " bytes)");
  unsigned char len[8];
  src.read(0, 8, len);
  uint64_t header_len = 0;
  for (int i = 0; i < 8; ++i) header_len |= uint64_t(len[i]) << (8 * i);
  SN_CHECK(header_len <= kMaxHeader && header_len <= size - 8, "load", "'", path, "' declares a header of ",
           header_len, " bytes in a file of ", size, " (corrupt or truncated)");
  std::string text(size_t(header_len), '\0');
  src.read(8, header_len, text.data());
  return {parse_header(text, path), 8 + header_len, size - 8 - header_len};
}

SafetensorsFile parse(const ByteSource& src, const std::string& path, const TensorFilter& wanted) {
  const Header h = read_header(src, path);
  const nlohmann::json& header = h.json;
  const uint64_t data_size = h.data_size;

  SafetensorsFile file;
  struct Range {
    uint64_t begin, end;
    std::string name;
  };
  std::vector<Range> ranges;
  std::set<std::string> names;  // every tensor of the file, read or not
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const nlohmann::json& e = it.value();
    if (name == "__metadata__") {
      file.metadata = metadata_of(header, path);
      continue;
    }
    SN_CHECK(e.is_object() && e.contains("dtype") && e.contains("shape") && e.contains("data_offsets") &&
                 e["dtype"].is_string() && e["shape"].is_array() && e["data_offsets"].is_array() &&
                 e["data_offsets"].size() == 2,
             "load", "'", path, "' entry '", name, "' lacks dtype, shape or data_offsets");
    DType dtype;
    SN_CHECK(parse_dtype(e["dtype"].get<std::string>(), dtype), "load", "'", path, "' entry '", name,
             "' has unsupported dtype ", e["dtype"].get<std::string>());
    SN_CHECK(e["shape"].size() <= 8, "load", "'", path, "' entry '", name, "' has ", e["shape"].size(),
             " dims (at most 8)");
    Shape shape;
    uint64_t count = 1;
    for (const auto& d : e["shape"]) {
      SN_CHECK(d.is_number_unsigned() && d.get<uint64_t>() < (uint64_t(1) << 40), "load", "'", path,
               "' entry '", name, "' has an invalid shape");
      shape.push_back(d.get<int64_t>());
      count *= d.get<uint64_t>();
      SN_CHECK(count <= data_size, "load", "'", path, "' entry '", name, "' is larger than the file");
    }
    for (const auto& o : e["data_offsets"])
      SN_CHECK(o.is_number_unsigned(), "load", "'", path, "' entry '", name, "' has invalid data_offsets");
    const uint64_t begin = e["data_offsets"][0].get<uint64_t>(), end = e["data_offsets"][1].get<uint64_t>();
    SN_CHECK(begin <= end && end <= data_size, "load", "'", path, "' entry '", name, "' data [", begin,
             ", ", end, ") lies outside the ", data_size, " data bytes");
    SN_CHECK(end - begin == count * element_size(dtype), "load", "'", path, "' entry '", name, "' has ",
             end - begin, " bytes for shape ", shape_str(shape), " of ", dtype_name(dtype));
    ranges.push_back({begin, end, name});
    names.insert(name);
    if (wanted && !wanted(name)) continue;
    Tensor t = empty(shape, dtype);
    src.read(h.data_begin + begin, end - begin, t.data_ptr());
    file.tensors[name] = t;
  }
  std::sort(ranges.begin(), ranges.end(), [](const Range& a, const Range& b) { return a.begin < b.begin; });
  for (size_t i = 1; i < ranges.size(); ++i)
    SN_CHECK(ranges[i].begin >= ranges[i - 1].end, "load", "'", path, "' entries '", ranges[i - 1].name,
             "' and '", ranges[i].name, "' overlap");
  verify_checksums(file, names, path);
  return file;
}

}  // namespace

SafetensorsFile load_safetensors(const std::string& path, const TensorFilter& wanted) {
  return parse(FileSource(path), path, wanted);
}

std::map<std::string, std::string> load_safetensors_metadata(const std::string& path) {
  return metadata_of(read_header(FileSource(path), path).json, path);
}

SafetensorsFile parse_safetensors(std::string_view bytes, const std::string& path) {
  return parse(MemorySource(bytes), path, {});
}

}  // namespace sn
