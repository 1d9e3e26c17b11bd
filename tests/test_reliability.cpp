// tests/test_reliability.cpp — hostile input and resource failures end in one clear sn::Error.
// The malformed files of tests/malformed/ (made by make_corpus.py) are each fed to their parser;
// expected.tsv names the words each error must contain.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "sortednet.h"

using namespace sn;

namespace {

const std::string kCorpus = std::string(SN_SOURCE_DIR) + "/tests/malformed/";

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

// Feeds one corpus file to the parser named in expected.tsv.
void parse_with(const std::string& parser, const std::string& file) {
  const std::string path = kCorpus + file;
  if (parser == "safetensors") {
    load_safetensors(path);
  } else if (parser == "checkpoint") {
    auto model = make_model({"fmnist-mlp", BnStats::shared, 0});
    load_checkpoint(path, *model, nullptr);
  } else if (parser == "idx-images") {
    load_idx(path, kCorpus + "idx-valid-labels");
  } else if (parser == "idx-images-empty") {
    load_idx(path, kCorpus + "idx-empty-labels");
  } else if (parser == "idx-labels") {
    load_idx(kCorpus + "idx-valid-images", path);
  } else if (parser == "cifar") {
    load_cifar10({path});
  } else if (parser == "config") {
    load_config(path);
  } else if (parser == "submodel") {
    static auto w2 = make_model({"fmnist-resnet", BnStats::shared, 0});
    w2->space().parse(read_text(path));
  } else {
    FAIL() << "unknown parser '" << parser << "' in expected.tsv";
  }
}

}  // namespace

TEST(Malformed, EveryCorpusFileIsRefusedWithItsOneLineError) {
  std::ifstream tsv(kCorpus + "expected.tsv");
  ASSERT_TRUE(tsv.good()) << "missing " << kCorpus << "expected.tsv";
  std::string line;
  int cases = 0;
  while (std::getline(tsv, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::stringstream fields(line);
    std::string file, parser, expected;
    std::getline(fields, file, '\t');
    std::getline(fields, parser, '\t');
    std::getline(fields, expected);
    ++cases;
    try {
      parse_with(parser, file);
      ADD_FAILURE() << file << ": accepted";
    } catch (const Error& e) {
      const std::string message = e.what();
      EXPECT_NE(message.find(expected), std::string::npos) << file << ": \"" << message << "\" lacks \"" << expected << "\"";
      EXPECT_EQ(message.find('\n'), std::string::npos) << file << ": more than one line: " << message;
      std::printf("%-34s %s\n", file.c_str(), message.c_str());
    }
  }
  EXPECT_GE(cases, 50);
}

TEST(Malformed, ParsersInMemoryAgreeWithFiles) {
  // The fuzz targets use the in-memory parsers; they must refuse what the file readers refuse.
  EXPECT_THROW(parse_safetensors(read_text(kCorpus + "st-overlap.safetensors"), "memory"), Error);
  EXPECT_THROW(parse_idx({0, 0, 8, 3}, {}, "images", "labels"), Error);
  EXPECT_THROW(parse_cifar10({std::vector<uint8_t>(3073, 11)}, {"batch"}), Error);
  std::string bytes = read_text(kCorpus + "st-bad-checksum.safetensors");
  try {
    parse_safetensors(bytes, "memory");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'memory' tensor 'a' fails its checksum"), std::string::npos) << e.what();
  }
}

TEST(Memory, AnAllocationThatCannotBeServedNamesTheTensor) {
  try {
    Tensor t = empty({int64_t(1) << 40, 1024});  // 4 PiB
    FAIL() << "allocated " << t.str();
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("cannot allocate a [1099511627776, 1024] f32 tensor"), std::string::npos) << message;
  }
  try {
    Tensor t = empty({int64_t(1) << 62, 8});  // the byte count overflows
    FAIL() << "allocated " << t.str();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("too"), std::string::npos) << e.what();
  }
}

TEST(Checkpoint, ChecksumsAreWrittenAndAFlippedByteIsCaught) {
  const std::string path = ::testing::TempDir() + "/crc.safetensors";
  Generator gen(1);
  save_safetensors(path, {{"w", randn({64}, gen)}, {"b", zeros({3})}});
  SafetensorsFile f = load_safetensors(path);
  EXPECT_EQ(f.metadata.count("crc32.w"), 1u);
  EXPECT_EQ(f.metadata.count("crc32.b"), 1u);
  std::string bytes = read_text(path);
  bytes[bytes.size() - 20] ^= 0x01;  // one bit inside the data of "w"
  EXPECT_THROW(parse_safetensors(bytes, path), Error);
}
