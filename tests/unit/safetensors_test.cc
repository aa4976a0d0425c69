// Safetensors loader: single file and 2-shard index against safetensors.numpy fixtures, tensor
// views, __metadata__, and a table of truncated / corrupted / hostile headers that must each give
// a clean Status naming the file.
#include "tessera/model/safetensors.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "kernels/common/types.h"

namespace tessera::model {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

const std::string kDir = std::string(TESSERA_FIXTURES_DIR) + "/loaders/";

std::vector<uint8_t> file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(in)), {});
}

json load_json(const std::string& path) {
  std::ifstream in(path);
  return json::parse(in);
}

std::unique_ptr<uint8_t[]> exact_heap_copy(const std::vector<uint8_t>& bytes, size_t n) {
  auto p = std::make_unique<uint8_t[]>(n == 0 ? 1 : n);
  if (n > 0) std::memcpy(p.get(), bytes.data(), n);
  return p;
}

// numpy dtype name (fixture) -> DType and a reader of element i as double.
DType numpy_dtype(const std::string& name) {
  if (name == "float32") return DType::kF32;
  if (name == "float16") return DType::kF16;
  if (name == "float64") return DType::kF64;
  if (name == "int64") return DType::kI64;
  if (name == "int8") return DType::kI8;
  if (name == "bool") return DType::kBool;
  ADD_FAILURE() << "fixture dtype " << name;
  return DType::kF32;
}

double element(const SafetensorsTensor& t, size_t i) {
  const auto* p = static_cast<const uint8_t*>(t.data);
  switch (t.dtype) {
    case DType::kF32: {
      float v;
      std::memcpy(&v, p + 4 * i, 4);
      return v;
    }
    case DType::kF16: {
      uint16_t v;
      std::memcpy(&v, p + 2 * i, 2);
      return kernels::f16_to_f32(v);
    }
    case DType::kF64: {
      double v;
      std::memcpy(&v, p + 8 * i, 8);
      return v;
    }
    case DType::kI64: {
      int64_t v;
      std::memcpy(&v, p + 8 * i, 8);
      return static_cast<double>(v);
    }
    case DType::kI8:
      return static_cast<int8_t>(p[i]);
    case DType::kBool:
      return p[i];
    default:
      ADD_FAILURE() << "unexpected dtype";
      return 0;
  }
}

void expect_matches_fixture(const SafetensorsModel& m, const json& exp, bool check_file = true) {
  ASSERT_EQ(m.tensors().size(), exp["tensors"].size());
  for (const auto& [name, e] : exp["tensors"].items()) {
    SCOPED_TRACE(name);
    const SafetensorsTensor* t = m.find(name);
    ASSERT_NE(t, nullptr);
    EXPECT_EQ(t->name, name);
    EXPECT_EQ(t->dtype, numpy_dtype(e["dtype"]));
    EXPECT_EQ(t->shape, e["shape"].get<std::vector<int64_t>>());
    if (check_file) {
      EXPECT_EQ(fs::path(t->file).filename().string(), e["file"].get<std::string>());
    }
    const json& values = e["values"];
    for (size_t i = 0; i < values.size(); ++i) {
      const double want = values[i].is_boolean() ? values[i].get<bool>() : values[i].get<double>();
      EXPECT_EQ(element(*t, i), want) << "value " << i;
    }
    const Tensor view = m.tensor(*t);
    EXPECT_EQ(view.data(), t->data);
    EXPECT_EQ(view.nbytes(), static_cast<int64_t>(t->nbytes));
  }
  for (const auto& [key, value] : exp["metadata"].items()) {
    EXPECT_EQ(m.metadata(key), value.get<std::string>()) << key;
  }
  EXPECT_EQ(m.find("no.such.tensor"), nullptr);
  EXPECT_FALSE(m.metadata("no_such_key").has_value());
}

TEST(Safetensors, SingleFileMatchesSafetensorsPython) {
  auto m = SafetensorsModel::open(kDir + "tiny.safetensors");
  ASSERT_TRUE(m.ok()) << m.status().message();
  expect_matches_fixture(*m, load_json(kDir + "tiny.safetensors.expected.json"));
}

TEST(Safetensors, ScalarAndEmptyTensorViews) {
  auto m = SafetensorsModel::open(kDir + "tiny.safetensors");
  ASSERT_TRUE(m.ok()) << m.status().message();
  const Tensor scalar = m->tensor(*m->find("scalar"));
  EXPECT_EQ(scalar.ndim(), 1);
  EXPECT_EQ(scalar.dim(0), 1);
  EXPECT_EQ(scalar.data_as<float>()[0], 3.5f);
  const SafetensorsTensor* empty = m->find("empty");
  ASSERT_NE(empty, nullptr);
  EXPECT_EQ(empty->nbytes, 0u);
  EXPECT_EQ(m->tensor(*empty).numel(), 0);
}

TEST(Safetensors, ShardedIndexDirectoryAndJson) {
  const json exp = load_json(kDir + "sharded.expected.json");
  for (const std::string& path :
       {kDir + "sharded", kDir + "sharded/model.safetensors.index.json"}) {
    SCOPED_TRACE(path);
    auto m = SafetensorsModel::open(path);
    ASSERT_TRUE(m.ok()) << m.status().message();
    expect_matches_fixture(*m, exp);
    EXPECT_EQ(m->metadata("total_size"), "112");  // from the index's "metadata"
    EXPECT_NE(m->find("a.weight")->file, m->find("c.weight")->file);
  }
}

TEST(Safetensors, ParseBufferNamesItsInput) {
  const auto bytes = file_bytes(kDir + "tiny.safetensors");
  auto m = SafetensorsModel::parse_buffer(bytes.data(), bytes.size(), "mem:tiny");
  ASSERT_TRUE(m.ok()) << m.status().message();
  EXPECT_EQ(m->find("ids")->file, "mem:tiny");
  expect_matches_fixture(*m, load_json(kDir + "tiny.safetensors.expected.json"), false);
}

TEST(Safetensors, EveryTruncationIsACleanError) {
  const auto bytes = file_bytes(kDir + "tiny.safetensors");
  ASSERT_FALSE(bytes.empty());
  for (size_t n = 0; n < bytes.size(); ++n) {
    auto copy = exact_heap_copy(bytes, n);
    auto m = SafetensorsModel::parse_buffer(copy.get(), n, "cut.safetensors");
    ASSERT_FALSE(m.ok()) << "truncated at " << n;
    EXPECT_NE(m.status().message().find("cut.safetensors"), std::string::npos)
        << m.status().message();
  }
}

TEST(Safetensors, FlippedHeaderBytesNeverCrash) {
  const auto bytes = file_bytes(kDir + "tiny.safetensors");
  uint64_t header_len = 0;
  std::memcpy(&header_len, bytes.data(), 8);
  int accepted = 0;
  for (size_t i = 0; i < 8 + header_len; ++i) {
    for (uint8_t mask : {0x01, 0x20, 0xff}) {
      std::vector<uint8_t> mutated = bytes;
      mutated[i] ^= mask;
      auto copy = exact_heap_copy(mutated, mutated.size());
      auto m = SafetensorsModel::parse_buffer(copy.get(), mutated.size(), "flip.safetensors");
      if (!m.ok()) {
        EXPECT_NE(m.status().message().find("flip.safetensors"), std::string::npos);
        continue;
      }
      ++accepted;
      uint64_t sum = 0;
      for (const auto& t : m->tensors()) {
        for (uint64_t b = 0; b < t.nbytes; ++b) sum += static_cast<const uint8_t*>(t.data)[b];
      }
      (void)sum;
    }
  }
  EXPECT_GT(accepted, 0);
}

std::vector<uint8_t> with_header(const std::string& header, size_t data_bytes) {
  std::vector<uint8_t> out(8 + header.size() + data_bytes, 0);
  const uint64_t n = header.size();
  std::memcpy(out.data(), &n, 8);
  std::copy(header.begin(), header.end(), out.begin() + 8);
  return out;
}

TEST(Safetensors, HostileHeadersGiveCleanErrors) {
  struct Case {
    const char* name;
    std::vector<uint8_t> bytes;
    const char* expect;
  };
  std::vector<uint8_t> huge_len(16, 0);
  const uint64_t kHuge = ~0ull;
  std::memcpy(huge_len.data(), &kHuge, 8);
  const std::vector<Case> cases = {
      {"short", {1, 2, 3}, "shorter than"},
      {"huge header length", huge_len, "header claims"},
      {"not json", with_header("{\"a\":", 0), "not a JSON object"},
      {"json array", with_header("[1,2]", 0), "not a JSON object"},
      {"entry not object", with_header(R"({"t":3})", 0), "not a JSON object"},
      {"no dtype", with_header(R"({"t":{"shape":[1],"data_offsets":[0,4]}})", 4), "dtype"},
      {"unknown dtype", with_header(R"({"t":{"dtype":"Q9","shape":[1],"data_offsets":[0,4]}})", 4),
       "unsupported safetensors dtype"},
      {"no shape", with_header(R"({"t":{"dtype":"F32","data_offsets":[0,4]}})", 4), "shape"},
      {"negative dim", with_header(R"({"t":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4),
       "non-negative"},
      {"float dim", with_header(R"({"t":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}})", 4),
       "non-negative"},
      {"no offsets", with_header(R"({"t":{"dtype":"F32","shape":[1]}})", 4), "data_offsets"},
      {"three offsets",
       with_header(R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}})", 8),
       "data_offsets"},
      {"reversed offsets",
       with_header(R"({"t":{"dtype":"F32","shape":[0],"data_offsets":[4,0]}})", 4), "not inside"},
      {"offsets past eof",
       with_header(R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 3), "not inside"},
      {"offset near max",
       with_header(
           R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[18446744073709551612,18446744073709551615]}})",
           4),
       "not inside"},
      {"size mismatch", with_header(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", 8),
       "need 8"},
      {"shape overflow",
       with_header(R"({"t":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}})",
                   0),
       "overflows"},
      {"zero dim stride overflow",
       with_header(
           R"({"t":{"dtype":"F32","shape":[0,4294967296,4294967296],"data_offsets":[0,0]}})", 0),
       "overflows"},
      {"dim over int64",
       with_header(R"({"t":{"dtype":"F32","shape":[18446744073709551615],"data_offsets":[0,0]}})",
                   0),
       "int64"},
      {"metadata not object", with_header(R"({"__metadata__":[1]})", 0), "__metadata__"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    auto copy = exact_heap_copy(c.bytes, c.bytes.size());
    auto m = SafetensorsModel::parse_buffer(copy.get(), c.bytes.size(), "bad.safetensors");
    ASSERT_FALSE(m.ok());
    EXPECT_NE(m.status().message().find("bad.safetensors"), std::string::npos)
        << m.status().message();
    EXPECT_NE(m.status().message().find(c.expect), std::string::npos) << m.status().message();
  }
}

TEST(Safetensors, MetadataNonStringValuesAreKeptAsJson) {
  const auto bytes = with_header(R"({"__metadata__":{"a":"x","n":3}})", 0);
  auto m = SafetensorsModel::parse_buffer(bytes.data(), bytes.size(), "meta");
  ASSERT_TRUE(m.ok()) << m.status().message();
  EXPECT_EQ(m->metadata("a"), "x");
  EXPECT_EQ(m->metadata("n"), "3");
  EXPECT_TRUE(m->tensors().empty());
}

TEST(Safetensors, MissingPathsAndBrokenIndexes) {
  auto missing = SafetensorsModel::open(kDir + "nope.safetensors");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);

  const fs::path tmp =
      fs::temp_directory_path() / ("tessera_st_test_" + std::to_string(::getpid()));
  fs::create_directories(tmp);
  auto empty_dir = SafetensorsModel::open(tmp.string());
  ASSERT_FALSE(empty_dir.ok());
  EXPECT_NE(empty_dir.status().message().find("no model.safetensors"), std::string::npos);

  const auto write = [&](const std::string& name, const std::string& text) {
    std::ofstream(tmp / name) << text;
  };
  fs::copy_file(kDir + "sharded/model-00001-of-00002.safetensors", tmp / "s1.safetensors",
                fs::copy_options::overwrite_existing);
  write("missing_shard.json",
        R"({"weight_map":{"a.weight":"s1.safetensors","x":"gone.safetensors"}})");
  auto gone = SafetensorsModel::open((tmp / "missing_shard.json").string());
  ASSERT_FALSE(gone.ok());
  EXPECT_NE(gone.status().message().find("gone.safetensors"), std::string::npos);

  write("wrong_shard.json", R"({"weight_map":{"zzz":"s1.safetensors"}})");
  auto wrong = SafetensorsModel::open((tmp / "wrong_shard.json").string());
  ASSERT_FALSE(wrong.ok());
  EXPECT_NE(wrong.status().message().find("'zzz'"), std::string::npos) << wrong.status().message();

  write("no_map.json", R"({"metadata":{}})");
  auto no_map = SafetensorsModel::open((tmp / "no_map.json").string());
  ASSERT_FALSE(no_map.ok());
  EXPECT_NE(no_map.status().message().find("weight_map"), std::string::npos);

  write("bad.json", "{not json");
  EXPECT_FALSE(SafetensorsModel::open((tmp / "bad.json").string()).ok());

  // A directory without an index but with shards loads them all.
  fs::remove(tmp / "missing_shard.json");
  auto dir = SafetensorsModel::open(tmp.string());
  ASSERT_TRUE(dir.ok()) << dir.status().message();
  EXPECT_NE(dir->find("a.weight"), nullptr);
  fs::remove_all(tmp);
}

}  // namespace
}  // namespace tessera::model
