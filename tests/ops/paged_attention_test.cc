// Paged KV ops beyond the registry: the op_checks contract (bad block tables, slots and
// query_start are rejected before any memory is touched), paged_attention over one sequence
// with an identity block table equals the plain attention op, the MLA aliased-V layout equals
// a copied V, and kv_append's f16 rounding is kernels::f32_to_f16's, bit for bit.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "kernels/common/types.h"
#include "tessera/backend/backend.h"
#include "tessera/backend/op_checks.h"
#include "tests/ops/bad_call.h"

namespace tessera::backend {
namespace {

std::vector<std::unique_ptr<Backend>> both_backends() {
  std::vector<std::unique_ptr<Backend>> out;
  out.push_back(make_reference_backend());
  out.push_back(make_cpu_backend());
  return out;
}

void fill_random(const Tensor& t, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  const int64_t n = t.numel();
  if (t.dtype() == DType::kF16) {
    auto* p = t.data_as<uint16_t>();
    for (int64_t i = 0; i < n; ++i) p[i] = kernels::f32_to_f16(dist(rng));
  } else {
    auto* p = t.data_as<float>();
    for (int64_t i = 0; i < n; ++i) p[i] = dist(rng);
  }
}

void fill_value(const Tensor& t, float value) {
  auto* p = t.data_as<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = value;
}

TEST(PagedOpChecks, BadBatchesFailClearlyAndTouchNothing) {
  // 2 sequences: (cached 5, new 2) and (cached 0, new 1); 4 blocks of 4 slots, 2 kv heads.
  OwnedTensor q(DType::kF32, {3, 4, 16});
  OwnedTensor kc(DType::kF32, {4, 4, 2, 16});
  OwnedTensor vc(DType::kF32, {4, 4, 2, 16});
  OwnedTensor kc_bf16(DType::kBF16, {4, 4, 2, 16});
  OwnedTensor out(DType::kF32, {3, 4, 16});
  OwnedTensor tables(DType::kI32, {2, 3});
  OwnedTensor bad_tables(DType::kI32, {2, 3});
  OwnedTensor neg_tables(DType::kI32, {2, 3});
  OwnedTensor narrow_tables(DType::kI32, {2, 1});
  const int32_t good[] = {2, 0, 99, 3, -1, -1};  // entries past the used blocks are not read
  const int32_t bad[] = {2, 4, 0, 3, -1, -1};     // block id 4 == num_blocks
  const int32_t neg[] = {2, 0, 0, -1, 0, 0};      // seq 1's only block is -1
  std::memcpy(tables.data_as<int32_t>(), good, sizeof(good));
  std::memcpy(bad_tables.data_as<int32_t>(), bad, sizeof(bad));
  std::memcpy(neg_tables.data_as<int32_t>(), neg, sizeof(neg));
  std::memcpy(narrow_tables.data_as<int32_t>(), good, 2 * sizeof(int32_t));
  const std::vector<int32_t> qs = {0, 2, 3}, lens = {7, 1};
  const std::vector<int32_t> qs_down = {0, 4, 3}, qs_short = {0, 2}, qs_end = {0, 2, 4};
  const std::vector<int32_t> qs_start = {1, 2, 3}, lens_short = {1, 1};
  Tensor v_too_wide(kc.data_as<float>(), DType::kF32, {4, 4, 2, 32});
  v_too_wide = v_too_wide.with_strides({kc.view().stride_bytes(0), kc.view().stride_bytes(1),
                                        kc.view().stride_bytes(2), 4});
  OwnedTensor k_new(DType::kF32, {2, 2, 16});
  OwnedTensor v_new(DType::kF32, {2, 2, 16});
  const std::vector<int32_t> slots_far = {3, 16}, slots_ok = {3, -1}, slots_one = {3};

  auto pa = [&](const Tensor& k, const Tensor& v, std::span<const int32_t> query_start,
                std::span<const int32_t> seq_lens, const Tensor& bt) {
    return [&, k, v, query_start, seq_lens, bt](Backend& b) {
      return b.paged_attention(q.view(), k, v, query_start, seq_lens, bt, 0.25f, out.view());
    };
  };
  const std::vector<BadCall> calls = {
      {"block id == num_blocks", {"paged_attention", "block id 4", "f32[4, 4, 2, 16]"},
       pa(kc.view(), vc.view(), qs, lens, bad_tables.view())},
      {"negative block id", {"paged_attention", "block id -1", "sequence 1"},
       pa(kc.view(), vc.view(), qs, lens, neg_tables.view())},
      {"too few table columns", {"paged_attention", "needs 2 blocks", "i32[2, 1]"},
       pa(kc.view(), vc.view(), qs, lens, narrow_tables.view())},
      {"query_start not monotone", {"paged_attention", "monotone", "sequence 1"},
       pa(kc.view(), vc.view(), qs_down, lens, tables.view())},
      {"query_start wrong size", {"paged_attention", "query_start has 2 entries"},
       pa(kc.view(), vc.view(), qs_short, lens, tables.view())},
      {"query_start past num_tokens", {"paged_attention", "num_tokens 3", "0 .. 4"},
       pa(kc.view(), vc.view(), qs_end, lens, tables.view())},
      {"query_start not from 0", {"paged_attention", "1 .. 3"},
       pa(kc.view(), vc.view(), qs_start, lens, tables.view())},
      {"new tokens > seq_len", {"paged_attention", "sequence 0 has 2 new tokens", "seq_len 1"},
       pa(kc.view(), vc.view(), qs, lens_short, tables.view())},
      {"bf16 cache", {"paged_attention", "bf16[4, 4, 2, 16]", "f32 or f16"},
       pa(kc_bf16.view(), kc_bf16.view(), qs, lens, tables.view())},
      {"aliased v wider than k", {"paged_attention", "aliases", "Dv (32)"},
       pa(kc.view(), v_too_wide, qs, lens, tables.view())},
      {"kv_append slot out of range", {"kv_append", "slot 16", "16 slots"},
       [&](Backend& b) {
         return b.kv_append(k_new.view(), v_new.view(), slots_far, kc.view(), vc.view());
       }},
      {"kv_append slot count", {"kv_append", "2 tokens", "1 slots"},
       [&](Backend& b) {
         return b.kv_append(k_new.view(), v_new.view(), slots_one, kc.view(), vc.view());
       }},
  };
  for (auto& be : both_backends()) {
    fill_value(out.view(), 7.0f);
    fill_value(kc.view(), 3.0f);
    for (const BadCall& c : calls) expect_rejected(*be, c);
    for (int64_t i = 0; i < out.view().numel(); ++i) {
      ASSERT_EQ(out.data_as<float>()[i], 7.0f) << be->name() << ": a rejected call wrote out";
    }
    for (int64_t i = 0; i < kc.view().numel(); ++i) {
      ASSERT_EQ(kc.data_as<float>()[i], 3.0f) << be->name() << ": a rejected call wrote k_cache";
    }
    // The same batch with a good table passes; a skipped slot is fine.
    fill_random(kc.view(), 1);
    fill_random(vc.view(), 2);
    fill_random(q.view(), 3);
    EXPECT_TRUE(pa(kc.view(), vc.view(), qs, lens, tables.view())(*be).ok()) << be->name();
    EXPECT_TRUE(be->kv_append(k_new.view(), v_new.view(), slots_ok, kc.view(), vc.view()).ok());
  }
}

// One sequence, identity block table: the paged cache is the flat cache cut into blocks.
TEST(PagedAttention, IdentityTableMatchesAttention) {
  constexpr int64_t kCached = 30, kNew = 7, kBlock = 8, kBlocks = 5, kHq = 6, kHkv = 2, kD = 64;
  for (DType kv : {DType::kF32, DType::kF16}) {
    OwnedTensor q(DType::kF32, {kNew, kHq, kD});
    OwnedTensor kc(kv, {kBlocks, kBlock, kHkv, kD});
    OwnedTensor vc(kv, {kBlocks, kBlock, kHkv, kD});
    fill_random(q.view(), 11);
    fill_random(kc.view(), 12);
    fill_random(vc.view(), 13);
    OwnedTensor table(DType::kI32, {1, kBlocks});
    for (int32_t b = 0; b < kBlocks; ++b) table.data_as<int32_t>()[b] = b;
    const Tensor k_flat = kc.view().reshape({kBlocks * kBlock, kHkv, kD});
    const Tensor v_flat = vc.view().reshape({kBlocks * kBlock, kHkv, kD});
    std::vector<int32_t> positions;
    for (int32_t i = 0; i < kNew; ++i) positions.push_back(kCached + i);
    const std::vector<int32_t> qs = {0, kNew}, lens = {kCached + kNew};
    for (auto& be : both_backends()) {
      OwnedTensor paged(DType::kF32, {kNew, kHq, kD});
      OwnedTensor plain(DType::kF32, {kNew, kHq, kD});
      ASSERT_TRUE(be->paged_attention(q.view(), kc.view(), vc.view(), qs, lens, table.view(),
                                      0.125f, paged.view())
                      .ok());
      ASSERT_TRUE(be->attention(q.view(), k_flat, v_flat, positions, 0.125f, plain.view()).ok());
      const bool exact = be->name() == "reference";  // same double loop, same order
      for (int64_t i = 0; i < paged.view().numel(); ++i) {
        const float a = paged.data_as<float>()[i], b = plain.data_as<float>()[i];
        if (exact) {
          ASSERT_EQ(a, b) << be->name() << " " << dtype_name(kv) << " element " << i;
        } else {
          ASSERT_NEAR(a, b, 2e-6f) << be->name() << " " << dtype_name(kv) << " element " << i;
        }
      }
    }
  }
}

// MLA: V read from the first Dv values of the K row equals a separate copy of those values.
TEST(PagedAttention, AliasedLatentValueEqualsCopiedValue) {
  constexpr int64_t kBlocks = 4, kBlock = 16, kD = 576, kDv = 512, kHq = 16, kTokens = 3;
  OwnedTensor q(DType::kF32, {kTokens, kHq, kD});
  OwnedTensor kc(DType::kF16, {kBlocks, kBlock, 1, kD});
  OwnedTensor vc(DType::kF16, {kBlocks, kBlock, 1, kDv});
  fill_random(q.view(), 21);
  fill_random(kc.view(), 22);
  for (int64_t r = 0; r < kBlocks * kBlock; ++r) {
    std::memcpy(vc.data_as<uint16_t>() + r * kDv, kc.data_as<uint16_t>() + r * kD, kDv * 2);
  }
  Tensor v_alias(kc.data_as<uint16_t>(), DType::kF16, {kBlocks, kBlock, 1, kDv});
  v_alias = v_alias.with_strides({kBlock * kD * 2, kD * 2, kD * 2, 2});
  OwnedTensor table(DType::kI32, {2, 3});
  const int32_t ids[] = {3, 1, 0, 2, 0, 0};
  std::memcpy(table.data_as<int32_t>(), ids, sizeof(ids));
  const std::vector<int32_t> qs = {0, 2, 3}, lens = {40, 9};
  for (auto& be : both_backends()) {
    OwnedTensor a(DType::kF32, {kTokens, kHq, kDv});
    OwnedTensor b(DType::kF32, {kTokens, kHq, kDv});
    ASSERT_TRUE(be->paged_attention(q.view(), kc.view(), v_alias, qs, lens, table.view(), 0.07f,
                                    a.view())
                    .ok());
    ASSERT_TRUE(be->paged_attention(q.view(), kc.view(), vc.view(), qs, lens, table.view(), 0.07f,
                                    b.view())
                    .ok());
    EXPECT_EQ(std::memcmp(a.data_as<float>(), b.data_as<float>(), a.view().nbytes()), 0)
        << be->name();
  }
}

// kv_append into an f16 cache rounds exactly as kernels::f32_to_f16; skipped slots keep bytes.
TEST(KvAppend, F16RoundingIsExactAndSkippedSlotsUntouched) {
  constexpr int64_t kTokens = 4, kHkv = 2, kD = 40, kBlocks = 3, kBlock = 5;
  OwnedTensor k(DType::kF32, {kTokens, kHkv, kD});
  OwnedTensor v(DType::kF32, {kTokens, kHkv, kD});
  fill_random(k.view(), 31);
  fill_random(v.view(), 32);
  k.data_as<float>()[0] = 1.00048828f;  // a tie: rounds to even
  const std::vector<int32_t> slots = {14, -1, 0, 7};
  for (auto& be : both_backends()) {
    OwnedTensor kc(DType::kF16, {kBlocks, kBlock, kHkv, kD});
    OwnedTensor vc(DType::kF16, {kBlocks, kBlock, kHkv, kD});
    std::memset(kc.data_as<uint16_t>(), 0x5a, kc.view().nbytes());
    std::memset(vc.data_as<uint16_t>(), 0x5a, vc.view().nbytes());
    ASSERT_TRUE(be->kv_append(k.view(), v.view(), slots, kc.view(), vc.view()).ok());
    for (int64_t slot = 0; slot < kBlocks * kBlock; ++slot) {
      int64_t token = -1;
      for (int64_t t = 0; t < kTokens; ++t) {
        if (slots[t] == slot) token = t;
      }
      for (int64_t i = 0; i < kHkv * kD; ++i) {
        const uint16_t got_k = kc.data_as<uint16_t>()[slot * kHkv * kD + i];
        const uint16_t got_v = vc.data_as<uint16_t>()[slot * kHkv * kD + i];
        if (token < 0) {
          ASSERT_EQ(got_k, 0x5a5a) << be->name() << " slot " << slot;
          ASSERT_EQ(got_v, 0x5a5a) << be->name() << " slot " << slot;
        } else {
          ASSERT_EQ(got_k, kernels::f32_to_f16(k.data_as<float>()[token * kHkv * kD + i]))
              << be->name() << " slot " << slot << " value " << i;
          ASSERT_EQ(got_v, kernels::f32_to_f16(v.data_as<float>()[token * kHkv * kD + i]))
              << be->name() << " slot " << slot << " value " << i;
        }
      }
    }
  }
}

}  // namespace
}  // namespace tessera::backend
