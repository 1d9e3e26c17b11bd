// train/config.cpp — TOML recipes bound to TrainConfig fields.
#include "train/config.h"

#include <sys/stat.h>

#include <charconv>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <toml++/toml.h>

#include "core/error.h"
#include "kernels/backend.h"

namespace sn {
namespace {

enum class Kind { integer, unsigned_integer, real, boolean, text };

struct Field {
  const char* key;  // "section.name"
  Kind kind;
  void* target;
};

std::vector<Field> fields(TrainConfig& c) {
  return {
      {"model.name", Kind::text, &c.model},
      {"model.bn_stats", Kind::text, &c.bn_stats},
      {"data.dataset", Kind::text, &c.dataset},
      {"data.dir", Kind::text, &c.data_dir},
      {"data.context", Kind::integer, &c.context},
      {"data.train_limit", Kind::integer, &c.train_limit},
      {"data.test_limit", Kind::integer, &c.test_limit},
      {"data.batch_size", Kind::integer, &c.batch_size},
      {"data.crop_padding", Kind::integer, &c.crop_padding},
      {"data.flip", Kind::boolean, &c.flip},
      {"train.epochs", Kind::integer, &c.epochs},
      {"train.max_steps", Kind::integer, &c.max_steps},
      {"train.submodels_per_step", Kind::integer, &c.submodels_per_step},
      {"train.sampler", Kind::text, &c.sampler},
      {"train.sampler_power", Kind::real, &c.sampler_power},
      {"train.new_batch_per_submodel", Kind::boolean, &c.new_batch_per_submodel},
      {"train.largest_loss_weight", Kind::real, &c.largest_loss_weight},
      {"train.distill_alpha", Kind::real, &c.distill_alpha},
      {"train.distill_temperature", Kind::real, &c.distill_temperature},
      {"train.independent", Kind::text, &c.independent},
      {"train.update", Kind::text, &c.update},
      {"train.seed", Kind::unsigned_integer, &c.seed},
      {"train.log_every", Kind::integer, &c.log_every},
      {"train.clip_grad_norm", Kind::real, &c.clip_grad_norm},
      {"train.checkpoint_every", Kind::integer, &c.checkpoint_every},
      {"train.keep_checkpoints", Kind::integer, &c.keep_checkpoints},
      {"train.nonfinite", Kind::text, &c.nonfinite},
      {"train.max_consecutive_skips", Kind::integer, &c.max_consecutive_skips},
      {"train.data_parallel", Kind::text, &c.data_parallel},
      {"train.comm_timeout_s", Kind::real, &c.comm_timeout_s},
      {"train.device", Kind::text, &c.device},
      {"train.objective", Kind::text, &c.objective},
      {"train.precision", Kind::text, &c.precision},
      {"optimizer.name", Kind::text, &c.optimizer},
      {"optimizer.lr", Kind::real, &c.lr},
      {"optimizer.momentum", Kind::real, &c.momentum},
      {"optimizer.nesterov", Kind::boolean, &c.nesterov},
      {"optimizer.weight_decay", Kind::real, &c.weight_decay},
      {"optimizer.beta1", Kind::real, &c.beta1},
      {"optimizer.beta2", Kind::real, &c.beta2},
      {"optimizer.eps", Kind::real, &c.adam_eps},
      {"optimizer.schedule", Kind::text, &c.schedule},
      {"optimizer.warmup_steps", Kind::integer, &c.warmup_steps},
      {"optimizer.final_lr_fraction", Kind::real, &c.final_lr_fraction},
      {"eval.batch_size", Kind::integer, &c.eval_batch_size},
      {"eval.latency_batch", Kind::integer, &c.latency_batch},
      {"eval.latency_repeats", Kind::integer, &c.latency_repeats},
      {"eval.recalibration_batches", Kind::integer, &c.recalibration_batches},
      {"eval.submodels", Kind::text, &c.eval_submodels},
      {"eval.share_prefixes", Kind::boolean, &c.eval_share_prefixes},
      {"eval.share_chunk", Kind::integer, &c.eval_share_chunk},
  };
}

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::integer: return "an integer";
    case Kind::unsigned_integer: return "a non-negative integer";
    case Kind::real: return "a number";
    case Kind::boolean: return "true or false";
    case Kind::text: return "a string";
  }
  return "?";
}

// Whether s is well-formed UTF-8 — no overlong forms, surrogates or code points past U+10FFFF —
// as the checkpoint's JSON header and the TOML of its stored recipe require.
bool valid_utf8(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    const size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    uint32_t cp = n == 1 ? c : c & (0x7f >> n);
    for (size_t k = 1; k < n; ++k) {
      const auto t = static_cast<unsigned char>(s[i + k]);
      if ((t >> 6) != 0x2) return false;
      cp = (cp << 6) | (t & 0x3f);
    }
    static constexpr uint32_t kSmallest[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kSmallest[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += n;
  }
  return true;
}

void assign(const Field& f, const toml::node& v, const std::string& source) {
  auto bad = [&] { fail("config", source + ": '" + f.key + "' must be " + kind_name(f.kind)); };
  switch (f.kind) {
    case Kind::integer:
      if (!v.is_integer()) bad();
      *static_cast<int64_t*>(f.target) = v.value<int64_t>().value();
      break;
    case Kind::unsigned_integer:
      if (!v.is_integer() || v.value<int64_t>().value() < 0) bad();
      *static_cast<uint64_t*>(f.target) = uint64_t(v.value<int64_t>().value());
      break;
    case Kind::real:
      if (!v.is_number()) bad();
      if (!std::isfinite(v.value<double>().value()))
        fail("config", source + ": '" + f.key + "' must be a finite number");
      *static_cast<double*>(f.target) = v.value<double>().value();
      break;
    case Kind::boolean:
      if (!v.is_boolean()) bad();
      *static_cast<bool*>(f.target) = v.value<bool>().value();
      break;
    case Kind::text:
      if (!v.is_string()) bad();
      if (!valid_utf8(v.value<std::string>().value()))
        fail("config", source + ": '" + f.key + "' is not valid UTF-8 text");
      *static_cast<std::string*>(f.target) = v.value<std::string>().value();
      break;
  }
}

void set_key(TrainConfig& c, const std::string& key, const toml::node& v, const std::string& source) {
  for (const Field& f : fields(c))
    if (key == f.key) return assign(f, v, source);
  // A near miss is most likely a typo: name the closest known key of the same section.
  std::string section = key.substr(0, key.find('.')), known;
  for (const Field& f : fields(c))
    if (std::string(f.key).rfind(section + ".", 0) == 0) known += (known.empty() ? "" : ", ") + std::string(f.key);
  fail("config", source + ": unknown key '" + key + "'" + (known.empty() ? std::string(" (unknown section)") : " (known: " + known + ")"));
}

}  // namespace

void validate(const TrainConfig& c) {
  auto positive = [](const char* key, int64_t v) { SN_CHECK(v > 0, "config", "'", key, "' must be positive, got ", v); };
  auto non_negative = [](const char* key, double v) { SN_CHECK(v >= 0, "config", "'", key, "' must not be negative, got ", v); };
  positive("data.batch_size", c.batch_size);
  positive("train.epochs", c.epochs);
  SN_CHECK(c.epochs <= 1000000, "config", "'train.epochs' must be at most 1000000, got ", c.epochs);
  positive("train.submodels_per_step", c.submodels_per_step);
  positive("eval.batch_size", c.eval_batch_size);
  positive("eval.share_chunk", c.eval_share_chunk);
  positive("eval.latency_batch", c.latency_batch);
  positive("eval.latency_repeats", c.latency_repeats);
  positive("train.log_every", c.log_every);
  positive("train.keep_checkpoints", c.keep_checkpoints);
  positive("train.max_consecutive_skips", c.max_consecutive_skips);
  SN_CHECK(c.data_parallel == "synced" || c.data_parallel == "per-rank", "config",
           "train.data_parallel must be \"synced\" or \"per-rank\", got \"", c.data_parallel, "\"");
  (void)Device::parse(c.device);  // "cpu", "cuda" or "cuda:N", else a one-line error
  SN_CHECK(c.comm_timeout_s > 0, "config", "'train.comm_timeout_s' must be positive, got ", c.comm_timeout_s);
  SN_CHECK(c.nonfinite == "skip" || c.nonfinite == "stop", "config", "train.nonfinite must be \"skip\" or \"stop\", got \"",
           c.nonfinite, "\"");
  for (auto [key, v] : {std::pair{"data.train_limit", c.train_limit}, {"data.test_limit", c.test_limit},
                        {"data.crop_padding", c.crop_padding}, {"train.max_steps", c.max_steps},
                        {"train.checkpoint_every", c.checkpoint_every}, {"optimizer.warmup_steps", c.warmup_steps},
                        {"eval.recalibration_batches", c.recalibration_batches}})
    non_negative(key, double(v));
  non_negative("optimizer.lr", c.lr);
  auto in_unit = [](const char* key, double v, bool one_allowed) {
    SN_CHECK(v >= 0 && (one_allowed ? v <= 1 : v < 1), "config", "'", key, "' must be in [0, 1",
             one_allowed ? "]" : ")", ", got ", v);
  };
  in_unit("optimizer.momentum", c.momentum, false);
  in_unit("optimizer.beta1", c.beta1, false);
  in_unit("optimizer.beta2", c.beta2, false);
  in_unit("optimizer.final_lr_fraction", c.final_lr_fraction, true);
  SN_CHECK(c.adam_eps > 0, "config", "'optimizer.eps' must be positive, got ", c.adam_eps);
  non_negative("optimizer.weight_decay", c.weight_decay);
  non_negative("train.clip_grad_norm", c.clip_grad_norm);
  non_negative("train.largest_loss_weight", c.largest_loss_weight);
  SN_CHECK(c.distill_alpha >= 0 && c.distill_alpha <= 1, "config", "'train.distill_alpha' must be in [0, 1]");
  SN_CHECK(c.distill_temperature > 0, "config", "'train.distill_temperature' must be positive");
  // The teacher is the step's first sub-model, the largest, on the step's one batch.
  SN_CHECK(c.distill_alpha == 0 || c.sampler == "sandwich", "config",
           "'train.distill_alpha' needs train.sampler = \"sandwich\" (the largest sub-model first in every step), "
           "got \"", c.sampler, "\"");
  SN_CHECK(c.distill_alpha == 0 || !c.new_batch_per_submodel, "config",
           "'train.distill_alpha' needs one batch per step (train.new_batch_per_submodel = false): the teacher's "
           "targets are for that batch");
  SN_CHECK(c.dataset == "fashion-mnist" || c.dataset == "idx" || c.dataset == "cifar10" || c.dataset == "text",
           "config", "'data.dataset' must be fashion-mnist, idx, cifar10 or text, got '", c.dataset, "'");
  SN_CHECK(c.context > 0, "config", "'data.context' must be positive, got ", c.context);
  SN_CHECK(c.objective == "soft" || c.objective == "sampled", "config",
           "train.objective must be \"soft\" or \"sampled\", got \"", c.objective, "\"");
  parse_matmul_precision(c.precision);  // a clear error for anything else
  parse_bn_stats(c.bn_stats);
  parse_sampler(c.sampler);
  parse_update_semantics(c.update);
  SN_CHECK(c.optimizer == "sgd" || c.optimizer == "adamw", "config", "'optimizer.name' must be sgd or adamw, got '",
           c.optimizer, "'");
  SN_CHECK(c.schedule == "cosine" || c.schedule == "constant", "config",
           "'optimizer.schedule' must be cosine or constant, got '", c.schedule, "'");
}

namespace {

void apply_table(TrainConfig& c, const toml::table& t, const std::string& prefix, const std::string& source) {
  for (auto&& [k, v] : t) {
    const std::string key = prefix.empty() ? std::string(k.str()) : prefix + "." + std::string(k.str());
    if (v.is_table()) apply_table(c, *v.as_table(), key, source);
    else set_key(c, key, v, source);
  }
}

// A TOML basic string: quotes, backslashes and control characters escaped.
std::string quote(const std::string& s) {
  std::string out = "\"";
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (ch == '"' || ch == '\\') {
      out += '\\';
      out += ch;
    } else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", unsigned(c));
      out += buf;
    } else {
      out += ch;
    }
  }
  return out + "\"";
}

}  // namespace

TrainConfig parse_config(const std::string& text, const std::vector<std::string>& overrides, const std::string& source) {
  TrainConfig c;
  try {
    toml::table t = toml::parse(text, source);
    apply_table(c, t, "", source);
  } catch (const toml::parse_error& e) {
    std::ostringstream os;
    os << source << ":" << e.source().begin.line << ": " << e.description();
    fail("config", os.str());
  }
  for (const std::string& o : overrides) {
    auto eq = o.find('=');
    SN_CHECK(eq != std::string::npos && eq > 0, "config", "--set '", o, "' is not section.key=value");
    const std::string key = o.substr(0, eq), value = o.substr(eq + 1);
    SN_CHECK(o.find_first_of("\n\r") == std::string::npos, "config", "--set '", key, "=...' spans several lines");
    toml::table parsed;
    try {
      parsed = toml::parse("v = " + value);
    } catch (const toml::parse_error&) {
      parsed = toml::table{{"v", value}};  // a bare word: a string
    }
    set_key(c, key, *parsed.get("v"), "--set");
  }
  validate(c);
  return c;
}

TrainConfig load_config(const std::string& path, const std::vector<std::string>& overrides) {
  struct stat st {};
  SN_CHECK(::stat(path.c_str(), &st) == 0, "config", "cannot open '", path, "'");
  SN_CHECK(S_ISREG(st.st_mode), "config", "'", path, "' is not a regular file");
  std::ifstream in(path);
  SN_CHECK(in.good(), "config", "cannot open '", path, "'");
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_config(ss.str(), overrides, path);
}

OptimizerConfig TrainConfig::optimizer_config() const {
  OptimizerConfig o;
  o.name = optimizer;
  o.momentum = float(momentum);
  o.nesterov = nesterov;
  o.weight_decay = float(weight_decay);
  o.beta1 = float(beta1);
  o.beta2 = float(beta2);
  o.eps = float(adam_eps);
  o.semantics = parse_update_semantics(update);
  return o;
}

Schedule TrainConfig::schedule_config() const {
  return Schedule{schedule, float(lr), warmup_steps, float(final_lr_fraction)};
}

std::string TrainConfig::to_toml() const {
  TrainConfig copy = *this;
  std::ostringstream os;
  std::string section;
  for (const Field& f : fields(copy)) {
    std::string key = f.key, sec = key.substr(0, key.find('.')), name = key.substr(key.find('.') + 1);
    if (sec != section) {
      os << (section.empty() ? "" : "\n") << "[" << sec << "]\n";
      section = sec;
    }
    os << name << " = ";
    switch (f.kind) {
      case Kind::integer: os << *static_cast<int64_t*>(f.target); break;
      case Kind::unsigned_integer: os << *static_cast<uint64_t*>(f.target); break;
      case Kind::real: {
        char buf[64];  // the shortest text that reads back as the same double
        auto res = std::to_chars(buf, buf + sizeof(buf), *static_cast<double*>(f.target));
        std::string s(buf, res.ptr);
        if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
        os << s;
        break;
      }
      case Kind::boolean: os << (*static_cast<bool*>(f.target) ? "true" : "false"); break;
      case Kind::text: os << quote(*static_cast<std::string*>(f.target)); break;
    }
    os << "\n";
  }
  return os.str();
}

}  // namespace sn
