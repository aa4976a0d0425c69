// GGUF parser: values and tensor infos against gguf.GGUFReader fixtures (tiny synthetic files and
// the real SmolLM2 GGUF when present), and a table of truncated / corrupted / hostile inputs that
// must each give a clean Status naming the file.
#include "tessera/model/gguf.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tessera/core/dtype.h"

namespace tessera::model {
namespace {

using nlohmann::json;

const std::string kLoaders = std::string(TESSERA_FIXTURES_DIR) + "/loaders/";
const std::string kSmolLm = std::string(TESSERA_MODELS_DIR) + "/SmolLM2-135M-Instruct.Q4_1.gguf";

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(in)), {});
}

json read_json(const std::string& path) {
  std::ifstream in(path);
  return json::parse(in);
}

// Heap copy of exactly `n` bytes, so ASan flags any read past the end.
std::unique_ptr<uint8_t[]> exact_copy(const std::vector<uint8_t>& bytes, size_t n) {
  auto p = std::make_unique<uint8_t[]>(n == 0 ? 1 : n);
  if (n > 0) std::memcpy(p.get(), bytes.data(), n);
  return p;
}

// Reads every byte of every tensor, and every metadata value, of a parsed file.
uint64_t touch_everything(const GgufFile& f) {
  uint64_t sum = 0;
  for (const auto& info : f.tensors()) {
    const Tensor t = f.tensor(info);
    const auto* p = static_cast<const uint8_t*>(t.data());
    for (int64_t i = 0; i < t.nbytes(); ++i) sum += p[i];
  }
  for (const auto& key : f.keys()) {
    sum += f.get_string(key).value_or("").size();
    sum += static_cast<uint64_t>(f.get_int(key).value_or(0));
    sum += f.get_string_array(key).value_or(std::vector<std::string>{}).size();
    sum += f.get_int_array(key).value_or(std::vector<int64_t>{}).size();
    sum += f.get_float_array(key).value_or(std::vector<double>{}).size();
  }
  return sum;
}

// Compares a parsed file with a describe_gguf() fixture from scripts/make_loader_fixtures.py.
void expect_matches_fixture(const GgufFile& f, const json& exp) {
  EXPECT_EQ(f.version(), exp["version"].get<uint32_t>());
  EXPECT_EQ(f.alignment(), exp["alignment"].get<uint64_t>());
  EXPECT_EQ(f.data_offset(), exp["data_offset"].get<uint64_t>());
  EXPECT_EQ(f.size(), exp["size"].get<size_t>());
  EXPECT_EQ(f.keys().size(), exp["kv"].size());
  for (const auto& [key, e] : exp["kv"].items()) {
    SCOPED_TRACE(key);
    ASSERT_TRUE(f.has_key(key));
    const std::string type = e["type"];
    if (type == "string") {
      EXPECT_EQ(f.get_string(key), e["value"].get<std::string>());
      EXPECT_FALSE(f.get_int(key).has_value());
    } else if (type == "f32" || type == "f64") {
      EXPECT_EQ(f.get_float(key), e["value"].get<double>());
      EXPECT_FALSE(f.get_int(key).has_value());
    } else if (type == "bool") {
      EXPECT_EQ(f.get_bool(key), e["value"].get<bool>());
      EXPECT_EQ(f.get_int(key), e["value"].get<bool>() ? 1 : 0);
    } else if (type == "array") {
      EXPECT_FALSE(f.get_int(key).has_value());
      if (!e.contains("head")) continue;  // nested: checked by hand
      EXPECT_EQ(f.get_array_size(key), e["len"].get<uint64_t>());
      const json& head = e["head"];
      const std::string elem = e["elem"];
      if (elem == "string") {
        auto v = f.get_string_array(key);
        ASSERT_TRUE(v.has_value());
        for (size_t i = 0; i < head.size(); ++i) EXPECT_EQ((*v)[i], head[i].get<std::string>());
      } else if (elem == "f32" || elem == "f64") {
        auto v = f.get_float_array(key);
        ASSERT_TRUE(v.has_value());
        EXPECT_FALSE(f.get_int_array(key).has_value());
        for (size_t i = 0; i < head.size(); ++i) EXPECT_EQ((*v)[i], head[i].get<double>());
      } else {
        auto v = f.get_int_array(key);
        ASSERT_TRUE(v.has_value());
        for (size_t i = 0; i < head.size(); ++i) {
          EXPECT_EQ((*v)[i],
                    elem == "bool" ? int64_t{head[i].get<bool>()} : head[i].get<int64_t>());
        }
      }
    } else if (e["value"].is_number_unsigned() &&
               e["value"].get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) {
      EXPECT_FALSE(f.get_int(key).has_value());  // does not fit int64
      EXPECT_EQ(f.get_float(key), static_cast<double>(e["value"].get<uint64_t>()));
    } else {
      EXPECT_EQ(f.get_int(key), e["value"].get<int64_t>());
      EXPECT_EQ(f.get_float(key), static_cast<double>(e["value"].get<int64_t>()));
    }
  }
  ASSERT_EQ(f.tensors().size(), exp["tensors"].size());
  for (size_t i = 0; i < f.tensors().size(); ++i) {
    const auto& t = f.tensors()[i];
    const json& e = exp["tensors"][i];
    SCOPED_TRACE(t.name);
    EXPECT_EQ(t.name, e["name"].get<std::string>());
    EXPECT_EQ(static_cast<uint32_t>(t.dtype), e["type"].get<uint32_t>());
    EXPECT_EQ(t.shape, e["shape"].get<std::vector<int64_t>>());
    EXPECT_EQ(t.offset, e["offset"].get<uint64_t>());
    EXPECT_EQ(t.nbytes, e["nbytes"].get<uint64_t>());
    EXPECT_EQ(f.find_tensor(t.name), &t);
    const Tensor view = f.tensor(t);
    EXPECT_EQ(view.data(), f.data() + t.offset);
    EXPECT_EQ(view.nbytes(), static_cast<int64_t>(t.nbytes));
    EXPECT_EQ(view.ndim(), static_cast<int>(t.shape.size()));
    if (!exp["tensor_values"].contains(t.name)) continue;
    const auto want = exp["tensor_values"][t.name].get<std::vector<float>>();
    // Convert whole leading blocks covering the recorded values.
    const int64_t block = dtype_info(t.dtype).block_elems;
    const int64_t n = (static_cast<int64_t>(want.size()) + block - 1) / block * block;
    std::vector<float> got(n);
    convert_to_f32(t.dtype, view.data(), got.data(), n);
    for (size_t k = 0; k < want.size(); ++k) EXPECT_FLOAT_EQ(got[k], want[k]) << "value " << k;
  }
  EXPECT_EQ(f.find_tensor("no.such.tensor"), nullptr);
}

TEST(Gguf, TinyMatchesGgufPythonReader) {
  for (const char* name : {"tiny.gguf", "align64.gguf"}) {
    SCOPED_TRACE(name);
    auto f = GgufFile::open(kLoaders + name);
    ASSERT_TRUE(f.ok()) << f.status().message();
    expect_matches_fixture(*f, read_json(kLoaders + name + ".expected.json"));
  }
}

TEST(Gguf, Align64FileUsesItsAlignment) {
  auto f = GgufFile::open(kLoaders + "align64.gguf");
  ASSERT_TRUE(f.ok()) << f.status().message();
  EXPECT_EQ(f->alignment(), 64u);
  EXPECT_EQ(f->data_offset() % 64, 0u);
  for (const auto& t : f->tensors()) EXPECT_EQ((t.offset - f->data_offset()) % 64, 0u) << t.name;
}

TEST(Gguf, NestedArraysAndTypedGetters) {
  auto f = GgufFile::open(kLoaders + "tiny.gguf");
  ASSERT_TRUE(f.ok()) << f.status().message();
  const GgufValue* nested = f->find_value("test.nested");
  ASSERT_NE(nested, nullptr);
  EXPECT_EQ(nested->type, GgufValueType::kArray);
  EXPECT_EQ(nested->elem_type, GgufValueType::kArray);
  EXPECT_EQ(f->get_array_size("test.nested"), 3u);
  EXPECT_FALSE(f->get_int_array("test.nested").has_value());
  EXPECT_FALSE(f->get_string_array("test.nested").has_value());
  // Wrong-type and missing lookups are nullopt, never a crash.
  EXPECT_FALSE(f->get_string("llama.block_count").has_value());
  EXPECT_FALSE(f->get_bool("llama.block_count").has_value());
  EXPECT_FALSE(f->get_int("general.name").has_value());
  EXPECT_FALSE(f->get_float("general.name").has_value());
  EXPECT_FALSE(f->get_int("missing.key").has_value());
  EXPECT_FALSE(f->get_string_array("test.i32_array").has_value());
  EXPECT_FALSE(f->get_array_size("general.name").has_value());
  EXPECT_EQ(f->get_float_array("test.i32_array"), (std::vector<double>{3, -1, 7, 2147483647}));
  EXPECT_EQ(f->get_string("test.empty_string"), "");
  EXPECT_EQ(f->path(), kLoaders + "tiny.gguf");
  EXPECT_EQ(f->keys().front(), "general.architecture");
}

TEST(Gguf, ParseBufferMatchesOpen) {
  const auto bytes = read_bytes(kLoaders + "tiny.gguf");
  auto f = GgufFile::parse_buffer(bytes.data(), bytes.size(), "mem:tiny");
  ASSERT_TRUE(f.ok()) << f.status().message();
  EXPECT_EQ(f->path(), "mem:tiny");
  expect_matches_fixture(*f, read_json(kLoaders + "tiny.gguf.expected.json"));
}

TEST(Gguf, SmolLm2MatchesGgufPythonReader) {
  if (!std::filesystem::exists(kSmolLm)) GTEST_SKIP() << kSmolLm << " is absent";
  auto f = GgufFile::open(kSmolLm);
  ASSERT_TRUE(f.ok()) << f.status().message();
  expect_matches_fixture(*f, read_json(kLoaders + "smollm2_q4_1.expected.json"));
  EXPECT_EQ(f->get_array_size("tokenizer.ggml.tokens"), 49152u);
  EXPECT_EQ(f->get_array_size("tokenizer.ggml.merges"), 48900u);
  EXPECT_EQ(f->get_string_array("tokenizer.ggml.tokens")->size(), 49152u);
  const auto* embd = f->find_tensor("token_embd.weight");
  ASSERT_NE(embd, nullptr);
  EXPECT_EQ(embd->shape, (std::vector<int64_t>{49152, 576}));
  EXPECT_EQ(embd->dtype, DType::kQ8_0);
}

TEST(Gguf, EveryTruncationIsACleanError) {
  const auto bytes = read_bytes(kLoaders + "tiny.gguf");
  ASSERT_FALSE(bytes.empty());
  for (size_t n = 0; n < bytes.size(); ++n) {
    auto copy = exact_copy(bytes, n);
    auto f = GgufFile::parse_buffer(copy.get(), n, "trunc.gguf");
    ASSERT_FALSE(f.ok()) << "truncated at " << n;
    EXPECT_NE(f.status().message().find("trunc.gguf"), std::string::npos) << f.status().message();
    EXPECT_EQ(f.status().code(), StatusCode::kDataLoss);
  }
}

TEST(Gguf, FlippedHeaderBytesNeverCrash) {
  const auto bytes = read_bytes(kLoaders + "tiny.gguf");
  auto clean = GgufFile::parse_buffer(bytes.data(), bytes.size(), "clean");
  ASSERT_TRUE(clean.ok());
  const size_t header_end = clean->data_offset();
  int accepted = 0;
  for (size_t i = 0; i < header_end; ++i) {
    for (uint8_t mask : {0x01, 0x80, 0xff}) {
      std::vector<uint8_t> mutated = bytes;
      mutated[i] ^= mask;
      auto copy = exact_copy(mutated, mutated.size());
      auto f = GgufFile::parse_buffer(copy.get(), mutated.size(), "flip.gguf");
      if (f.ok()) {
        ++accepted;
        touch_everything(*f);
      } else {
        EXPECT_NE(f.status().message().find("flip.gguf"), std::string::npos);
      }
    }
  }
  EXPECT_GT(accepted, 0);  // flips inside string payloads / values are legal files
}

// Builds small GGUF byte strings for the hostile-input table.
class GgufBytes {
 public:
  GgufBytes& u32(uint32_t v) { return raw(&v, 4); }
  GgufBytes& u64(uint64_t v) { return raw(&v, 8); }
  GgufBytes& str(std::string_view s) {
    u64(s.size());
    return raw(s.data(), s.size());
  }
  GgufBytes& header(uint64_t num_tensors, uint64_t num_kv, uint32_t version = 3) {
    return raw("GGUF", 4).u32(version).u64(num_tensors).u64(num_kv);
  }
  GgufBytes& kv_u32(std::string_view key, uint32_t v) { return str(key).u32(4).u32(v); }
  // Tensor info with ggml ne[] (innermost first).
  GgufBytes& tensor(std::string_view name, std::vector<uint64_t> ne, uint32_t type,
                    uint64_t offset) {
    str(name).u32(static_cast<uint32_t>(ne.size()));
    for (uint64_t n : ne) u64(n);
    return u32(type).u64(offset);
  }
  GgufBytes& pad_to(size_t n) {
    bytes_.resize(std::max(bytes_.size(), n), 0);
    return *this;
  }
  GgufBytes& raw(const void* p, size_t n) {
    const auto* b = static_cast<const uint8_t*>(p);
    bytes_.insert(bytes_.end(), b, b + n);
    return *this;
  }
  const std::vector<uint8_t>& bytes() const { return bytes_; }

 private:
  std::vector<uint8_t> bytes_;
};

struct HostileCase {
  const char* name;
  GgufBytes bytes;
  const char* expect;  // substring of the error message
};

TEST(Gguf, HostileInputsGiveCleanErrors) {
  const uint64_t kHuge = 0x7fffffffffffffffull;
  std::vector<HostileCase> cases = {
      {"empty", GgufBytes(), "truncated"},
      {"bad magic", GgufBytes().raw("GGML", 4).u32(3).u64(0).u64(0), "not a GGUF file"},
      {"version 1", GgufBytes().header(0, 0, 1), "version 1"},
      {"big endian", GgufBytes().header(0, 0, 0x03000000), "big-endian"},
      {"version 9", GgufBytes().header(0, 0, 9), "unsupported GGUF version"},
      {"huge kv count", GgufBytes().header(0, kHuge), "metadata count"},
      {"huge tensor count", GgufBytes().header(kHuge, 0), "tensor count"},
      {"key past eof", GgufBytes().header(0, 1).u64(1000).raw("ab", 2).pad_to(40), "claims"},
      {"unknown value type", GgufBytes().header(0, 1).str("k").u32(13).u32(0),
       "unknown value type"},
      {"string past eof", GgufBytes().header(0, 1).str("k").u32(8).u64(kHuge).pad_to(64), "claims"},
      {"huge array", GgufBytes().header(0, 1).str("k").u32(9).u32(5).u64(kHuge).pad_to(64),
       "array 'k' claims"},
      {"huge string array", GgufBytes().header(0, 1).str("k").u32(9).u32(8).u64(1 << 20).pad_to(64),
       "array 'k' claims"},
      {"unknown array type", GgufBytes().header(0, 1).str("k").u32(9).u32(77).u64(1).pad_to(64),
       "unknown array element type"},
      {"duplicate key", GgufBytes().header(0, 2).kv_u32("k", 1).kv_u32("k", 2),
       "duplicate metadata"},
      {"alignment 3", GgufBytes().header(0, 1).kv_u32("general.alignment", 3), "power of two"},
      {"alignment 0", GgufBytes().header(0, 1).kv_u32("general.alignment", 0), "power of two"},
      {"alignment string", GgufBytes().header(0, 1).str("general.alignment").u32(8).str("32"),
       "power of two"},
      {"5 dims", GgufBytes().header(1, 0).tensor("t", {1, 1, 1, 1, 1}, 0, 0).pad_to(256), "5 dims"},
      {"0 dims", GgufBytes().header(1, 0).tensor("t", {}, 0, 0).pad_to(256), "0 dims"},
      {"unknown tensor type", GgufBytes().header(1, 0).tensor("t", {4}, 99, 0).pad_to(256),
       "unsupported ggml type id 99"},
      {"dim over int64", GgufBytes().header(1, 0).tensor("t", {~0ull}, 0, 0).pad_to(256), "dim 0"},
      {"ne product overflow",
       GgufBytes().header(1, 0).tensor("t", {1ull << 32, 1ull << 32}, 0, 0).pad_to(256),
       "overflows"},
      {"byte size overflow",
       GgufBytes().header(1, 0).tensor("t", {1ull << 31, 1ull << 31}, 0, 0).pad_to(256),
       "overflows"},
      {"zero dim stride overflow",
       GgufBytes().header(1, 0).tensor("t", {1ull << 40, 0, 1ull << 40}, 0, 0).pad_to(256),
       "overflows"},
      {"partial block", GgufBytes().header(1, 0).tensor("t", {33}, 8, 0).pad_to(256), "blocks"},
      {"offset past eof", GgufBytes().header(1, 0).tensor("t", {4}, 0, 1ull << 40).pad_to(256),
       "runs past the end"},
      {"offset overflow", GgufBytes().header(1, 0).tensor("t", {4}, 0, ~0ull - 31).pad_to(256),
       "runs past the end"},
      {"tensor overlaps eof", GgufBytes().header(1, 0).tensor("t", {64}, 0, 0).pad_to(96),
       "runs past the end"},
      {"misaligned offset", GgufBytes().header(1, 0).tensor("t", {4}, 0, 4).pad_to(256),
       "not a multiple of the alignment"},
      {"duplicate tensor",
       GgufBytes().header(2, 0).tensor("t", {4}, 0, 0).tensor("t", {4}, 0, 32).pad_to(256),
       "duplicate tensor name"},
  };
  // Arrays nested deeper than the parser allows.
  GgufBytes deep;
  deep.header(0, 1).str("k").u32(9);
  for (int i = 0; i < 64; ++i) deep.u32(9).u64(1);
  deep.u32(4).u64(1).u32(7);
  cases.push_back({"deep nesting", deep, "nested deeper"});

  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    auto copy = exact_copy(c.bytes.bytes(), c.bytes.bytes().size());
    auto f = GgufFile::parse_buffer(copy.get(), c.bytes.bytes().size(), "hostile.gguf");
    ASSERT_FALSE(f.ok());
    EXPECT_NE(f.status().message().find("hostile.gguf"), std::string::npos) << f.status().message();
    EXPECT_NE(f.status().message().find(c.expect), std::string::npos) << f.status().message();
  }
}

TEST(Gguf, MinimalValidFiles) {
  auto no_tensors = GgufBytes().header(0, 1).kv_u32("a.b", 7);
  auto f = GgufFile::parse_buffer(no_tensors.bytes().data(), no_tensors.bytes().size(), "m");
  ASSERT_TRUE(f.ok()) << f.status().message();
  EXPECT_EQ(f->get_int("a.b"), 7);
  EXPECT_TRUE(f->tensors().empty());

  // A v2 file with one f32 tensor of shape [2, 3] (ne = {3, 2}) at the aligned data start:
  // 24 header + 65 tensor info bytes -> data at 96.
  auto v2 = GgufBytes().header(1, 0, 2).tensor("w", {3, 2}, 0, 0);
  v2.pad_to(96);
  const float vals[6] = {1, 2, 3, 4, 5, 6};
  v2.raw(vals, sizeof(vals));
  auto g = GgufFile::parse_buffer(v2.bytes().data(), v2.bytes().size(), "v2");
  ASSERT_TRUE(g.ok()) << g.status().message();
  EXPECT_EQ(g->version(), 2u);
  EXPECT_EQ(g->data_offset(), 96u);
  const Tensor t = g->tensor(g->tensors()[0]);
  EXPECT_EQ(t.dim(0), 2);
  EXPECT_EQ(t.dim(1), 3);
  EXPECT_EQ(t.data_as<float>()[5], 6.0f);
}

TEST(Gguf, OpenMissingFileIsNotFound) {
  auto f = GgufFile::open(kLoaders + "does_not_exist.gguf");
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.status().code(), StatusCode::kNotFound);
  EXPECT_NE(f.status().message().find("does_not_exist.gguf"), std::string::npos);
}

}  // namespace
}  // namespace tessera::model
