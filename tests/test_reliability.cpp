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

// eval, export and generate load a checkpoint without its optimizer: the optimizer's tensors are
// skipped (neither read nor checksummed); a resume reads and checks them.
TEST(Checkpoint, OptimizerStateIsReadOnlyByAResume) {
  const std::string path = ::testing::TempDir() + "/opt.safetensors";
  TrainConfig config;
  config.model = "fmnist-mlp";
  auto model = make_model({config.model, BnStats::shared, 1});
  OptimizerConfig oc;
  oc.name = "adamw";
  Optimizer optimizer(*model, oc);
  std::vector<Shape> windows;
  for (auto& [name, p] : model->named_parameters()) windows.push_back(p->tensor.sizes());
  Generator gen(2);
  const SubModel full = model->space().at(model->space().size() - 1);
  sum(model->forward(randn({2, 1, 28, 28}, gen), {full, 0, nullptr})).backward();
  optimizer.step(0.01f, windows);
  save_checkpoint(path, *model, optimizer, config, CheckpointState{});

  // The tensors are stored in name order, "model.*" before "optimizer.*", and AdamW's two moments
  // are two thirds of the data: a byte at 90% of the file lies in an optimizer tensor.
  std::string bytes = read_text(path);
  bytes[bytes.size() * 9 / 10] ^= 0x01;
  const std::string corrupt = ::testing::TempDir() + "/opt-corrupt.safetensors";
  std::ofstream(corrupt, std::ios::binary) << bytes;

  auto fresh = make_model({config.model, BnStats::shared, 7});
  load_checkpoint(corrupt, *fresh, nullptr);  // the weights alone: intact
  auto want = model->state_dict(), got = fresh->state_dict();
  for (auto& [name, t] : want) EXPECT_EQ(to_vector<float>(t), to_vector<float>(got.at(name))) << name;
  SafetensorsFile weights = load_safetensors(corrupt, [](const std::string& n) { return n.rfind("model.", 0) == 0; });
  EXPECT_EQ(weights.tensors.size(), want.size());
  for (auto& [name, t] : weights.tensors) EXPECT_EQ(name.rfind("model.", 0), 0u) << name;

  Optimizer resumed(*fresh, oc);
  try {
    load_checkpoint(corrupt, *fresh, &resumed);
    FAIL() << "a resume accepted a corrupt optimizer state";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("checksum"), std::string::npos) << e.what();
  }
  load_checkpoint(path, *fresh, &resumed);  // the intact file resumes

  // load_model builds the model without its random initialisation, then loads every tensor.
  auto loaded = load_model(corrupt, config);
  got = loaded->state_dict();
  for (auto& [name, t] : want) EXPECT_EQ(to_vector<float>(t), to_vector<float>(got.at(name))) << name;
  Generator g1(3), g2(3);
  {
    SkipRandomInit skip;
    EXPECT_EQ(init_normal({4}, 1.f, g1).numel(), 4);  // unset values; the generator is not used
  }
  EXPECT_EQ(to_vector<float>(init_normal({4}, 1.f, g1)), to_vector<float>(randn({4}, g2)));  // random again
}
