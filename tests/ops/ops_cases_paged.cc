// Registry cases of the paged KV ops: paged_attention over mixed batches (decodes and prefill
// chunks over a cached prefix) with shuffled block tables, and kv_append into slot mappings.
// Invariant: every cache slot no sequence reads (unused blocks, slots past a sequence's end)
// is NaN, so a kernel that reads one produces a NaN the harness catches.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <numeric>
#include <utility>
#include <vector>

#include "tests/ops/ops_harness.h"

namespace tessera::ops_test {
namespace {

using backend::Backend;
using backend::Op;

std::vector<int64_t> pads_if(bool strided, int ndim, int64_t pad) {
  std::vector<int64_t> p(ndim - 1, 0);
  if (strided) p[0] = pad;
  return p;
}

struct PagedShape {
  const char* what;
  int64_t hq, hkv, d, dv, block_size;
  std::vector<std::pair<int32_t, int32_t>> seqs;  // (cached tokens, new tokens)
  bool alias_v;  // MLA: V is the first dv values of each K row
  bool strided;
};

// A view of the first dv values of each row of a 4-D cache (same strides).
Tensor leading_values(const Tensor& k, int64_t dv) {
  Tensor v(k.data(), k.dtype(), {k.dim(0), k.dim(1), k.dim(2), dv});
  return v.with_strides({k.stride_bytes(0), k.stride_bytes(1), k.stride_bytes(2),
                         k.stride_bytes(3)});
}

OpFn setup_paged(const PagedShape& s, DType kv, CaseBuffers& b) {
  const int64_t num_seqs = static_cast<int64_t>(s.seqs.size());
  auto query_start = std::make_shared<std::vector<int32_t>>(1, 0);
  auto seq_lens = std::make_shared<std::vector<int32_t>>();
  std::vector<int64_t> used_blocks;
  int64_t total_used = 0, max_used = 0;
  for (const auto& [cached, n] : s.seqs) {
    query_start->push_back(query_start->back() + n);
    seq_lens->push_back(cached + n);
    used_blocks.push_back((cached + n + s.block_size - 1) / s.block_size);
    total_used += used_blocks.back();
    max_used = std::max(max_used, used_blocks.back());
  }
  const int64_t num_tokens = query_start->back();
  const int64_t num_blocks = total_used + 3;  // three blocks nobody owns
  std::vector<int32_t> perm(num_blocks);
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), b.rng());
  const int64_t max_blocks = max_used + 1;  // a trailing entry nobody reads
  auto table = std::make_shared<std::vector<int32_t>>(num_seqs * max_blocks, -1);
  int64_t next = 0;
  for (int64_t seq = 0; seq < num_seqs; ++seq) {
    for (int64_t blk = 0; blk < used_blocks[seq]; ++blk) {
      (*table)[seq * max_blocks + blk] = perm[next++];
    }
  }

  Tensor q = b.random(DType::kF32, {num_tokens, s.hq, s.d}, pads_if(s.strided, 3, 13));
  Tensor k = b.random(kv, {num_blocks, s.block_size, s.hkv, s.d}, pads_if(s.strided, 4, 5));
  Tensor v = s.alias_v ? leading_values(k, s.dv)
                       : b.random(kv, {num_blocks, s.block_size, s.hkv, s.dv},
                                  pads_if(s.strided, 4, 7));
  for (const Tensor& cache : {k, v}) {
    for (int64_t i = total_used; i < num_blocks; ++i) {
      b.poison_rows(cache.slice_rows(0, perm[i] + 1), perm[i]);
    }
    for (int64_t seq = 0; seq < num_seqs; ++seq) {
      const int64_t len = (*seq_lens)[seq];
      if (len % s.block_size == 0) continue;
      const int32_t last = (*table)[seq * max_blocks + used_blocks[seq] - 1];
      b.poison_rows(cache.row(last), len % s.block_size);
    }
    if (s.alias_v) break;  // v is k
  }
  Tensor out = b.output(DType::kF32, {num_tokens, s.hq, s.dv}, pads_if(s.strided, 3, 3));
  Tensor tables(table->data(), DType::kI32, {num_seqs, max_blocks});
  const float scale = 1.0f / std::sqrt(static_cast<float>(s.d));
  return [=](Backend& be) {
    (void)table;  // keeps the block table alive as long as the closure
    return be.paged_attention(q, k, v, *query_start, *seq_lens, tables, scale, out);
  };
}

void add_paged_attention_cases(std::vector<OpCase>& cases) {
  const std::vector<PagedShape> shapes = {
      {"mixed_bs16_gqa1", 4, 4, 64, 64, 16, {{0, 5}, {20, 1}, {33, 7}, {0, 1}}, false, true},
      {"mixed_bs1_gqa3", 6, 2, 64, 64, 1, {{9, 1}, {0, 4}, {5, 3}}, false, false},
      {"mixed_bs7_gqa8", 8, 1, 64, 64, 7, {{13, 1}, {0, 9}, {30, 2}, {6, 1}, {40, 5}}, false,
       true},
      {"prefill_bs16_gqa8", 8, 1, 64, 64, 16, {{100, 17}, {0, 1}}, false, false},
      {"empty_seq_bs7_gqa2", 4, 2, 64, 64, 7, {{5, 2}, {7, 0}, {0, 1}}, false, false},
      {"odd_dims_bs7_gqa3", 6, 2, 23, 41, 7, {{3, 2}, {11, 1}}, false, true},
      {"mla_alias_bs16", 16, 1, 576, 512, 16, {{0, 3}, {40, 1}, {17, 4}}, true, false},
      {"long_decode_4096", 9, 3, 64, 64, 16, {{4095, 1}, {2, 1}}, false, false},
      // Split keys (few (token, KV head) tasks over long contexts), MLA and GQA 16.
      {"mla_alias_split_bs16", 16, 1, 576, 512, 16, {{1500, 1}}, true, false},
      {"gqa16_split_bs16", 16, 1, 64, 64, 16, {{1200, 1}, {3, 1}}, false, true},
      // Decode-heavy MLA batch (the CUDA MLA decode kernel): three decodes over 1,000+ keys
      // (one ending on a block boundary) and a two-token run (speculative decode); 40 heads
      // take two 32-head CTAs, the second partial (16 heads: mla_alias_split_bs16).
      {"mla_decode_batch_bs16", 40, 1, 576, 512, 16, {{1100, 1}, {2047, 1}, {1024, 1}, {700, 2}},
       true, false},
      // Long query runs at head dim 128: the CUDA flash prefill path (f16 cache), beside a
      // decode row that stays on the split-K kernel.
      {"flash_prefill_d128", 8, 2, 128, 128, 16, {{64, 80}, {0, 70}, {10, 1}}, false, false},
  };
  for (DType kv : {DType::kF32, DType::kF16}) {
    for (const PagedShape& s : shapes) {
      OpCase c;
      c.name = fmt::format("paged_attention/{}_kv{}_hq{}_hkv{}_d{}_dv{}_bs{}{}", s.what,
                           dtype_name(kv), s.hq, s.hkv, s.d, s.dv, s.block_size,
                           s.strided ? "_strided" : "");
      c.tol = "paged_attention";
      c.op = Op::kPagedAttention;
      c.type_a = kv;
      c.setup = [=](CaseBuffers& b) { return setup_paged(s, kv, b); };
      cases.push_back(std::move(c));
    }
  }
}

void add_kv_append_cases(std::vector<OpCase>& cases) {
  struct Shape {
    int64_t t, hkv, d, dv, block_size, num_blocks;
    bool strided;
  };
  const Shape shapes[] = {{5, 3, 64, 64, 16, 4, false},
                          {1, 1, 576, 512, 1, 3, false},
                          {9, 2, 7, 5, 7, 5, true}};
  for (DType kv : {DType::kF32, DType::kF16}) {
    for (const Shape& s : shapes) {
      OpCase c;
      c.name = fmt::format("kv_append/kv{}_t{}_hkv{}_d{}_dv{}_bs{}{}", dtype_name(kv), s.t,
                           s.hkv, s.d, s.dv, s.block_size, s.strided ? "_strided" : "");
      c.tol = "kv_append";
      c.op = Op::kKvAppend;
      c.type_a = kv;
      c.expect_finite = false;  // untouched slots stay NaN
      c.setup = [=](CaseBuffers& b) -> OpFn {
        std::vector<int32_t> all(s.num_blocks * s.block_size);
        std::iota(all.begin(), all.end(), 0);
        std::shuffle(all.begin(), all.end(), b.rng());
        auto slots = std::make_shared<std::vector<int32_t>>(all.begin(), all.begin() + s.t);
        for (int64_t t = 1; t < s.t; t += 3) (*slots)[t] = -1;  // skipped (padding) tokens
        Tensor k = b.random(DType::kF32, {s.t, s.hkv, s.d}, pads_if(s.strided, 3, 5), 50.0f);
        Tensor v = b.random(DType::kF32, {s.t, s.hkv, s.dv}, pads_if(s.strided, 3, 3), 50.0f);
        Tensor kc = b.output(kv, {s.num_blocks, s.block_size, s.hkv, s.d},
                             pads_if(s.strided, 4, 2));
        Tensor vc = b.output(kv, {s.num_blocks, s.block_size, s.hkv, s.dv},
                             pads_if(s.strided, 4, 1));
        return [=](Backend& be) { return be.kv_append(k, v, *slots, kc, vc); };
      };
      cases.push_back(std::move(c));
    }
  }
}

}  // namespace

void add_paged_cases(std::vector<OpCase>& cases) {
  add_paged_attention_cases(cases);
  add_kv_append_cases(cases);
}

}  // namespace tessera::ops_test
