// op_checks through both backends: every bad call returns kInvalidArgument with a message that
// names the op and the offending shape, and never touches memory. Same contract, same text.
#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "tessera/backend/backend.h"
#include "tessera/backend/op_checks.h"
#include "tests/ops/bad_call.h"

namespace tessera::backend {
namespace {

TEST(OpChecks, BadShapesFailClearlyOnEveryBackend) {
  OwnedTensor x(DType::kF32, {4, 576});
  OwnedTensor x3(DType::kF32, {4, 9, 64});
  OwnedTensor w575(DType::kF32, {575});
  OwnedTensor w_q(DType::kQ4_1, {8, 576});
  OwnedTensor out_bad(DType::kF32, {4, 9});
  OwnedTensor out_f16(DType::kF16, {4, 576});
  OwnedTensor kc(DType::kF32, {16, 3, 64});
  OwnedTensor kc_bf16(DType::kBF16, {16, 3, 64});
  OwnedTensor kc_4(DType::kF32, {16, 4, 64});
  OwnedTensor att_out(DType::kF32, {4, 9, 64});
  OwnedTensor table(DType::kQ8_0, {10, 64});
  OwnedTensor emb_out(DType::kF32, {2, 64});
  OwnedTensor cvt_dst(DType::kQ8_0, {4, 576});
  OwnedTensor small(DType::kF32, {4, 575});
  const std::vector<int32_t> pos4 = {0, 1, 2, 3};
  const std::vector<int32_t> pos3 = {0, 1, 2};
  const std::vector<int32_t> pos_far = {0, 1, 2, 16};
  const std::vector<int32_t> bad_ids = {3, 10};
  RopeParams rope;
  rope.rot_dim = 64;
  RopeParams rope_odd = rope;
  rope_odd.rot_dim = 63;
  RopeParams rope_wide = rope;
  rope_wide.rot_dim = 128;
  Tensor strided_inner = x.view().with_strides({576 * 4, 8});

  const std::vector<BadCall> calls = {
      {"rms_norm weight length", {"rms_norm", "weight", "f32[575]", "576"},
       [&](Backend& b) { return b.rms_norm(x.view(), w575.view(), 1e-5f, x.view()); }},
      {"rms_norm out shape", {"rms_norm", "f32[4, 9]"},
       [&](Backend& b) {
         OwnedTensor w(DType::kF32, {576});
         return b.rms_norm(x.view(), w.view(), 1e-5f, out_bad.view());
       }},
      {"rms_norm strided inner dim", {"rms_norm", "contiguous"},
       [&](Backend& b) {
         OwnedTensor w(DType::kF32, {576});
         return b.rms_norm(strided_inner, w.view(), 1e-5f, x.view());
       }},
      {"matmul K mismatch", {"matmul", "f32[4, 575]", "q4_1[8, 576]"},
       [&](Backend& b) {
         OwnedTensor o(DType::kF32, {4, 8});
         return b.matmul(small.view(), w_q.view(), o.view());
       }},
      {"matmul out shape", {"matmul", "out", "f32[4, 9]"},
       [&](Backend& b) { return b.matmul(x.view(), w_q.view(), out_bad.view()); }},
      {"matmul out dtype", {"matmul", "out", "f16"},
       [&](Backend& b) { return b.matmul(x.view(), w_q.view(), out_f16.view()); }},
      {"rope positions count", {"rope", "f32[4, 9, 64]", "3 positions"},
       [&](Backend& b) { return b.rope(x3.view(), pos3, rope); }},
      {"rope odd rot_dim", {"rope", "rot_dim 63"},
       [&](Backend& b) { return b.rope(x3.view(), pos4, rope_odd); }},
      {"rope rot_dim > head_dim", {"rope", "rot_dim 128"},
       [&](Backend& b) { return b.rope(x3.view(), pos4, rope_wide); }},
      {"rope 2-d x", {"rope", "f32[4, 576]", "3 dims"},
       [&](Backend& b) { return b.rope(x.view(), pos4, rope); }},
      {"attention heads not a multiple", {"attention", "9", "4"},
       [&](Backend& b) {
         return b.attention(x3.view(), kc_4.view(), kc_4.view(), pos4, 0.125f, att_out.view());
       }},
      {"attention position past cache", {"attention", "position 16", "f32[16, 3, 64]"},
       [&](Backend& b) {
         return b.attention(x3.view(), kc.view(), kc.view(), pos_far, 0.125f, att_out.view());
       }},
      {"attention bf16 cache", {"attention", "bf16[16, 3, 64]", "f32 or f16"},
       [&](Backend& b) {
         return b.attention(x3.view(), kc_bf16.view(), kc_bf16.view(), pos4, 0.125f,
                            att_out.view());
       }},
      {"embedding id out of range", {"embedding", "id 10", "q8_0[10, 64]"},
       [&](Backend& b) { return b.embedding(table.view(), bad_ids, emb_out.view()); }},
      {"embedding out rows", {"embedding", "f32[2, 64]", "3 ids"},
       [&](Backend& b) { return b.embedding(table.view(), pos3, emb_out.view()); }},
      {"silu_mul shape mismatch", {"silu_mul", "f32[4, 576]", "f32[4, 575]"},
       [&](Backend& b) { return b.silu_mul(x.view(), small.view(), x.view()); }},
      {"add shape mismatch", {"add", "f32[4, 575]"},
       [&](Backend& b) { return b.add(x.view(), x.view(), small.view()); }},
      {"convert to q8_0", {"convert", "q8_0[4, 576]", "f32, f16 or bf16"},
       [&](Backend& b) { return b.convert(x.view(), cvt_dst.view()); }},
      {"convert shape mismatch", {"convert", "f32[4, 575]"},
       [&](Backend& b) { return b.convert(x.view(), small.view()); }},
      {"empty tensor", {"add", "no data"},
       [&](Backend& b) { return b.add(Tensor(), x.view(), x.view()); }},
  };

  std::vector<std::unique_ptr<Backend>> backends;
  backends.push_back(make_reference_backend());
  backends.push_back(make_cpu_backend());
  for (auto& be : backends) {
    for (const BadCall& c : calls) expect_rejected(*be, c);
  }
}

TEST(OpChecksBatched, BadShapesFailClearlyOnEveryBackend) {
  OwnedTensor x(DType::kF32, {3, 7, 64});
  OwnedTensor w(DType::kF32, {3, 33, 64});
  OwnedTensor w_b4(DType::kBF16, {4, 33, 64});
  OwnedTensor w_k65(DType::kF16, {3, 33, 65});
  OwnedTensor w_q8(DType::kQ8_0, {3, 33, 64});
  OwnedTensor w2(DType::kF32, {33, 64});
  OwnedTensor out(DType::kF32, {3, 7, 33});
  OwnedTensor out_n(DType::kF32, {3, 7, 32});
  OwnedTensor out_f16(DType::kF16, {3, 7, 33});
  OwnedTensor x_f16(DType::kF16, {3, 7, 64});
  // out aliasing x's memory: same bytes seen as [3, 7, 33] (rows strided by 64 floats).
  const Tensor out_on_x =
      Tensor(x.view().data(), DType::kF32, {3, 7, 33}).with_strides({7 * 64 * 4, 64 * 4, 4});

  const std::vector<BadCall> calls = {
      {"batch mismatch", {"matmul_batched", "bf16[4, 33, 64]", "f32[3, 7, 64]"},
       [&](Backend& b) { return b.matmul_batched(x.view(), w_b4.view(), out.view()); }},
      {"K mismatch", {"matmul_batched", "f16[3, 33, 65]"},
       [&](Backend& b) { return b.matmul_batched(x.view(), w_k65.view(), out.view()); }},
      {"out shape", {"matmul_batched", "f32[3, 7, 32]", "f32[3, 7, 33]"},
       [&](Backend& b) { return b.matmul_batched(x.view(), w.view(), out_n.view()); }},
      {"out dtype", {"matmul_batched", "out", "f16[3, 7, 33]", "f32"},
       [&](Backend& b) { return b.matmul_batched(x.view(), w.view(), out_f16.view()); }},
      {"x dtype", {"matmul_batched", "x", "f16[3, 7, 64]"},
       [&](Backend& b) { return b.matmul_batched(x_f16.view(), w.view(), out.view()); }},
      {"block weight", {"matmul_batched", "q8_0[3, 33, 64]", "f32, f16 or bf16"},
       [&](Backend& b) { return b.matmul_batched(x.view(), w_q8.view(), out.view()); }},
      {"2-D weight", {"matmul_batched", "w", "3 dims"},
       [&](Backend& b) { return b.matmul_batched(x.view(), w2.view(), out.view()); }},
      {"out overlaps x", {"matmul_batched", "overlap"},
       [&](Backend& b) { return b.matmul_batched(x.view(), w.view(), out_on_x); }},
  };
  std::vector<std::unique_ptr<Backend>> backends;
  backends.push_back(make_reference_backend());
  backends.push_back(make_cpu_backend());
  for (auto& be : backends) {
    for (const BadCall& c : calls) expect_rejected(*be, c);
  }
}

TEST(OpChecksRows, RowViewWalksStridedOuterDims) {
  std::vector<float> data(2 * 5 * 8, 0.0f);
  Tensor t(data.data(), DType::kF32, {2, 3, 4});
  t = t.with_strides({5 * 8 * 4, 8 * 4, 4});
  const RowView v = row_view(t);
  EXPECT_EQ(v.num_rows, 6);
  EXPECT_EQ(v.row_elems, 4);
  EXPECT_EQ(v.row(4), reinterpret_cast<char*>(data.data()) + (1 * 40 + 1 * 8) * 4);
}

}  // namespace
}  // namespace tessera::backend
