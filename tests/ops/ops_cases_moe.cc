// Registry cases of the mixture-of-experts ops: moe_route for DeepSeek-V3-like sigmoid routing
// (bias, groups), DeepSeek-V2 softmax greedy / group-limited, Mixtral top-2 renormalised and
// exact ties; moe_grouped_matmul over every kind of weight with repeated and unused experts.
// Invariant: ids (i32) are compared bitwise by the harness; weights and matmul outputs by NMSE.
#include <fmt/format.h>

#include <memory>
#include <vector>

#include "tests/ops/ops_harness.h"

namespace tessera::ops_test {
namespace {

using backend::Backend;
using backend::MoeRouteParams;
using backend::Op;
using Scoring = MoeRouteParams::Scoring;

struct RouteShape {
  const char* what;
  Scoring scoring;
  int64_t experts;
  int top_k, n_group, topk_group;
  bool norm, bias, ties;
  float scaling;
};

void add_moe_route_cases(std::vector<OpCase>& cases) {
  const RouteShape shapes[] = {
      {"v3_sigmoid_bias", Scoring::kSigmoid, 16, 2, 4, 2, true, true, false, 2.5f},
      {"v3_sigmoid_bias", Scoring::kSigmoid, 32, 4, 8, 4, true, true, false, 2.5f},
      {"v3_sigmoid_bias", Scoring::kSigmoid, 64, 8, 8, 4, true, true, false, 2.5f},
      {"v3_sigmoid_bias", Scoring::kSigmoid, 64, 8, 4, 2, false, true, false, 1.0f},
      {"sigmoid_nogroup_nobias", Scoring::kSigmoid, 16, 4, 1, 1, true, false, false, 1.0f},
      {"v2_softmax_greedy", Scoring::kSoftmax, 64, 6, 1, 1, false, false, false, 1.0f},
      {"v2_softmax_group_limited", Scoring::kSoftmax, 32, 6, 8, 3, false, false, false, 16.0f},
      {"mixtral_top2_norm", Scoring::kSoftmax, 8, 2, 1, 1, true, false, false, 1.0f},
      {"ties_softmax", Scoring::kSoftmax, 16, 4, 4, 2, false, false, true, 1.0f},
      {"ties_sigmoid", Scoring::kSigmoid, 16, 4, 4, 2, true, true, true, 1.0f},
  };
  for (const RouteShape& s : shapes) {
    for (int64_t tokens : {1, 7, 33}) {
      const bool strided = tokens == 7;
      OpCase c;
      c.name = fmt::format("moe_route/{}_e{}_top{}_g{}_kg{}{}_t{}{}", s.what, s.experts, s.top_k,
                           s.n_group, s.topk_group, s.norm ? "_norm" : "", tokens,
                           strided ? "_strided" : "");
      c.tol = "moe_route";
      c.op = Op::kMoeRoute;
      c.setup = [=](CaseBuffers& b) -> OpFn {
        std::vector<int64_t> pad = {strided ? 5 : 0};
        Tensor logits = b.random(DType::kF32, {tokens, s.experts}, pad, 3.0f);
        if (s.ties) {  // few distinct values: ties inside and across groups
          for (int64_t t = 0; t < tokens; ++t) {
            for (int64_t e = 0; e < s.experts; ++e) {
              b.set_f32(logits, t * s.experts + e, static_cast<float>((e * 7 + t) % 3) - 1.0f);
            }
          }
        }
        Tensor bias;
        if (s.bias) {
          bias = b.random(DType::kF32, {s.experts}, {}, 0.5f);
          if (s.ties) {
            for (int64_t e = 0; e < s.experts; ++e) b.set_f32(bias, e, 0.25f);
          }
        }
        Tensor ids = b.output(DType::kI32, {tokens, s.top_k}, {strided ? 3 : 0});
        Tensor weights = b.output(DType::kF32, {tokens, s.top_k}, {strided ? 2 : 0});
        MoeRouteParams p;
        p.scoring = s.scoring;
        p.top_k = s.top_k;
        p.n_group = s.n_group;
        p.topk_group = s.topk_group;
        p.norm_topk_prob = s.norm;
        p.routed_scaling_factor = s.scaling;
        return [=](Backend& be) { return be.moe_route(logits, bias, p, ids, weights); };
      };
      cases.push_back(std::move(c));
    }
  }
}

struct GroupedShape {
  int64_t tokens, top_k, experts, n;
  bool strided, dup_in_token;
};

void add_moe_grouped_matmul_cases(std::vector<OpCase>& cases) {
  const DType types[] = {DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0, DType::kQ4_0,
                         DType::kQ4_K, DType::kQ6_K};
  const GroupedShape shapes[] = {{1, 2, 8, 33, false, false},
                                 {7, 4, 16, 64, true, true},
                                 {33, 8, 32, 48, false, false},
                                 {33, 2, 8, 7, true, false}};
  for (DType type : types) {
    const bool kquant = type == DType::kQ4_K || type == DType::kQ6_K;
    const int64_t k_dim = kquant ? 256 : (dtype_info(type).is_quantized ? 96 : 77);
    for (const GroupedShape& s : shapes) {
      OpCase c;
      c.name = fmt::format("moe_grouped_matmul/{}_t{}_top{}_e{}_n{}_k{}{}{}", dtype_name(type),
                           s.tokens, s.top_k, s.experts, s.n, k_dim,
                           s.dup_in_token ? "_dup" : "", s.strided ? "_strided" : "");
      c.tol = "moe_grouped_matmul";
      c.op = Op::kMoeGroupedMatmul;
      c.type_a = type;
      c.setup = [=](CaseBuffers& b) -> OpFn {
        Tensor x = b.random(DType::kF32, {s.tokens, k_dim}, {s.strided ? 3 : 0});
        // Experts stacked on dim 0: one [E * N, K] allocation viewed as [E, N, K].
        Tensor flat = b.random_weights(type, s.experts * s.n, k_dim, 0.5f);
        Tensor w(flat.data(), type, {s.experts, s.n, k_dim});
        w = w.with_strides({s.n * flat.stride_bytes(0), flat.stride_bytes(0),
                            flat.stride_bytes(1)});
        Tensor ids = b.random(DType::kI32, {s.tokens, s.top_k}, {s.strided ? 2 : 0});
        // Experts 1 and E/2 are never used; the rest repeat across tokens.
        for (int64_t t = 0; t < s.tokens; ++t) {
          auto* row = ids.row(t).data_as<int32_t>();
          for (int64_t j = 0; j < s.top_k; ++j) {
            int64_t e = b.uniform_int(0, s.experts - 1);
            while (e == 1 || e == s.experts / 2) e = b.uniform_int(0, s.experts - 1);
            row[j] = static_cast<int32_t>(e);
          }
          if (s.dup_in_token) row[s.top_k - 1] = row[0];  // the same expert twice in a token
        }
        Tensor out = b.output(DType::kF32, {s.tokens, s.top_k, s.n}, {s.strided ? 4 : 0, 0});
        return [=](Backend& be) { return be.moe_grouped_matmul(x, w, ids, out); };
      };
      cases.push_back(std::move(c));
    }
  }
}

}  // namespace

void add_moe_cases(std::vector<OpCase>& cases) {
  add_moe_route_cases(cases);
  add_moe_grouped_matmul_cases(cases);
}

}  // namespace tessera::ops_test
