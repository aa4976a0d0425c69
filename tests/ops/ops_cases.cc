// The case list of the tests/ops registry: every op at awkward sizes (1, 7, 769...), strided
// rows where the contract allows, aliased outputs, special values, long contexts, every
// matmul weight type. Each case is built from a seed so all backends see the same inputs.
#include <fmt/format.h>

#include <cmath>
#include <memory>
#include <vector>

#include "tests/ops/ops_harness.h"

namespace tessera::ops_test {
namespace {

using backend::Backend;
using backend::Op;
using backend::RopeParams;

std::vector<int64_t> pad_if(bool strided, int ndim, int64_t pad = 3) {
  std::vector<int64_t> p(ndim > 1 ? ndim - 1 : 0, 0);
  if (strided && !p.empty()) p[0] = pad;
  return p;
}

const char* sfx(bool strided) { return strided ? "_strided" : ""; }

void add_embedding_cases(std::vector<OpCase>& cases) {
  const DType types[] = {DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0, DType::kQ4_0,
                         DType::kQ4_1, DType::kQ4_K, DType::kQ6_K};
  for (DType type : types) {
    const bool kquant = type == DType::kQ4_K || type == DType::kQ6_K;
    const bool plain = !dtype_info(type).is_quantized;
    for (int64_t num_ids : {1, 7}) {
      const int64_t hidden = kquant ? 512 : (plain ? 769 : 576);
      OpCase c;
      c.name = fmt::format("embedding/{}_ids{}_hidden{}{}", dtype_name(type), num_ids, hidden,
                           sfx(num_ids == 7));
      c.tol = plain ? "embedding_plain" : "embedding_quant";
      c.op = Op::kEmbedding;
      c.type_a = type;
      c.setup = [=](CaseBuffers& b) -> OpFn {
        const int64_t vocab = 37;
        Tensor table = b.random_weights(type, vocab, hidden);
        auto ids = std::make_shared<std::vector<int32_t>>();
        for (int64_t i = 0; i < num_ids; ++i) {
          ids->push_back(i == 0 ? vocab - 1 : static_cast<int32_t>(b.uniform_int(0, vocab - 1)));
        }
        if (num_ids > 2) (*ids)[1] = 0;
        Tensor out = b.output(DType::kF32, {num_ids, hidden}, pad_if(num_ids == 7, 2));
        return [=](Backend& be) { return be.embedding(table, *ids, out); };
      };
      cases.push_back(std::move(c));
    }
  }
}

void add_matmul_cases(std::vector<OpCase>& cases) {
  const DType types[] = {DType::kF32, DType::kF16, DType::kBF16, DType::kQ4_0,
                         DType::kQ4_1, DType::kQ8_0, DType::kQ4_K, DType::kQ6_K};
  struct Shape {
    int64_t m, n, k;
    bool strided;
  };
  for (DType type : types) {
    const bool kquant = type == DType::kQ4_K || type == DType::kQ6_K;
    const bool plain = !dtype_info(type).is_quantized;
    const int64_t k_big = kquant ? 768 : (plain ? 769 : 576);
    const Shape shapes[] = {{1, 1, kquant ? 256 : 32, false},
                            {1, 769, k_big, false},
                            {7, 33, k_big, true},
                            {16, 64, kquant ? 512 : 1536, false},
                            {33, 7, plain ? 7 : (kquant ? 256 : 64), true}};
    for (const Shape& s : shapes) {
      OpCase c;
      c.name = fmt::format("matmul/{}_m{}_n{}_k{}{}", dtype_name(type), s.m, s.n, s.k,
                           sfx(s.strided));
      c.tol = "matmul";
      c.op = Op::kMatmul;
      c.type_a = type;
      c.setup = [=](CaseBuffers& b) -> OpFn {
        Tensor x = b.random(DType::kF32, {s.m, s.k}, pad_if(s.strided, 2, 5));
        Tensor w = b.random_weights(type, s.n, s.k);
        Tensor out = b.output(DType::kF32, {s.m, s.n}, pad_if(s.strided, 2, 2));
        return [=](Backend& be) { return be.matmul(x, w, out); };
      };
      cases.push_back(std::move(c));
    }
  }
}

void add_rms_norm_cases(std::vector<OpCase>& cases) {
  struct Shape {
    std::vector<int64_t> shape;
    bool strided, in_place;
    float eps;
  };
  const Shape shapes[] = {{{1, 1}, false, false, 1e-5f},     {{1, 7}, false, true, 1e-6f},
                          {{7, 576}, true, false, 1e-5f},    {{3, 769}, true, true, 1e-5f},
                          {{33, 64}, false, false, 0.0f},    {{2, 3, 7, 64}, false, false, 1e-6f},
                          {{128, 1536}, false, false, 1e-5f}};
  for (const Shape& s : shapes) {
    std::string dims;
    for (int64_t d : s.shape) dims += fmt::format("{}{}", dims.empty() ? "" : "x", d);
    OpCase c;
    c.name = fmt::format("rms_norm/{}{}{}", dims, sfx(s.strided), s.in_place ? "_inplace" : "");
    c.tol = "rms_norm";
    c.op = Op::kRmsNorm;
    c.setup = [=](CaseBuffers& b) -> OpFn {
      const int nd = static_cast<int>(s.shape.size());
      const auto pads = pad_if(s.strided, nd);
      Tensor weight = b.random(DType::kF32, {s.shape.back()});
      if (s.in_place) {
        Tensor x = b.inout(s.shape, pads, 3.0f);
        return [=](Backend& be) { return be.rms_norm(x, weight, s.eps, x); };
      }
      Tensor x = b.random(DType::kF32, s.shape, pads, 3.0f);
      Tensor out = b.output(DType::kF32, s.shape, pads);
      return [=](Backend& be) { return be.rms_norm(x, weight, s.eps, out); };
    };
    cases.push_back(std::move(c));
  }
}

void add_rope_cases(std::vector<OpCase>& cases) {
  struct Scaling {
    const char* name;
    RopeParams::Scaling scaling;
    float factor;
  };
  const Scaling scalings[] = {{"none", RopeParams::Scaling::kNone, 1.0f},
                              {"linear", RopeParams::Scaling::kLinear, 4.0f},
                              {"llama3", RopeParams::Scaling::kLlama3, 8.0f},
                              {"yarn", RopeParams::Scaling::kYarn, 4.0f}};
  struct Shape {
    int64_t t, h, d;
    int rot;
    bool strided;
  };
  const Shape shapes[] = {{1, 1, 2, 2, false}, {7, 9, 64, 64, true}, {3, 3, 128, 64, false},
                          {5, 2, 46, 46, true}, {1, 16, 64, 32, false}};
  for (auto style : {RopeParams::Style::kNeox, RopeParams::Style::kInterleaved}) {
    for (const Scaling& sc : scalings) {
      for (const Shape& s : shapes) {
        OpCase c;
        c.name = fmt::format("rope/{}_{}_t{}_h{}_d{}_rot{}{}",
                             style == RopeParams::Style::kNeox ? "neox" : "interleaved", sc.name,
                             s.t, s.h, s.d, s.rot, sfx(s.strided));
        c.tol = "rope";
        c.op = Op::kRope;
        c.setup = [=](CaseBuffers& b) -> OpFn {
          RopeParams p;
          p.style = style;
          p.rot_dim = s.rot;
          p.theta = sc.scaling == RopeParams::Scaling::kLlama3 ? 500000.0f : 10000.0f;
          p.scaling = sc.scaling;
          p.factor = sc.factor;
          p.original_max_position_embeddings = sc.scaling == RopeParams::Scaling::kYarn ? 4096
                                                                                        : 8192;
          p.mscale = sc.scaling == RopeParams::Scaling::kYarn ? 1.1386f : 1.0f;
          Tensor x = b.inout({s.t, s.h, s.d}, pad_if(s.strided, 3, 11), 2.0f);
          auto pos = std::make_shared<std::vector<int32_t>>();
          for (int64_t t = 0; t < s.t; ++t) {
            pos->push_back(t == 0 ? 0 : static_cast<int32_t>(b.uniform_int(1, 16383)));
          }
          return [=](Backend& be) { return be.rope(x, *pos, p); };
        };
        cases.push_back(std::move(c));
      }
    }
  }
}

void add_attention_cases(std::vector<OpCase>& cases) {
  struct Shape {
    const char* what;
    int64_t t, hq, hkv, d, dv, slots;
    int32_t first_pos;  // positions first_pos .. first_pos + t - 1
    bool strided;
    float q_scale;
  };
  const Shape shapes[] = {
      {"decode_pos0", 1, 1, 1, 64, 64, 4, 0, false, 1.0f},
      {"decode_gqa", 1, 9, 3, 64, 64, 40, 17, true, 1.0f},
      {"prefill_chunk", 7, 9, 3, 64, 64, 48, 29, true, 1.0f},
      {"prefill_from0", 7, 4, 1, 7, 7, 9, 0, false, 1.0f},
      {"mla_like_dv", 3, 8, 8, 96, 64, 20, 10, false, 1.0f},
      {"peaky_softmax", 5, 4, 2, 128, 128, 70, 60, true, 6.0f},
      {"odd_dims", 2, 6, 2, 23, 41, 33, 30, true, 1.0f},
      {"long_8192", 1, 9, 3, 64, 64, 8192, 8191, false, 1.0f},
      {"long_prefill", 4, 4, 2, 64, 64, 5000, 4093, true, 1.0f},
      // Grouped kernel: group sizes 1 / 3 / 8 / 16, key blocks with tails, split keys (few
      // (token, KV head) tasks over >= 512 keys) and the MLA shape (576 / 512, one KV head).
      {"gqa1_ctx1", 1, 4, 4, 64, 64, 1, 0, false, 1.0f},
      {"gqa3_ctx17", 1, 9, 3, 64, 64, 17, 16, true, 1.0f},
      {"gqa8_ctx1000_split", 1, 8, 1, 128, 128, 1000, 999, false, 1.0f},
      {"gqa16_ctx1500_split", 1, 16, 1, 64, 64, 1500, 1499, true, 4.0f},
      {"mla16_ctx1000_split", 1, 16, 1, 576, 512, 1000, 999, false, 1.0f},
      {"gqa16_prefill_ctx1100", 9, 32, 2, 32, 32, 1100, 1091, false, 4.0f},
  };
  for (DType kv : {DType::kF32, DType::kF16}) {
    for (const Shape& s : shapes) {
      OpCase c;
      c.name = fmt::format("attention/{}_kv{}_t{}_hq{}_hkv{}_d{}_dv{}_slots{}{}", s.what,
                           dtype_name(kv), s.t, s.hq, s.hkv, s.d, s.dv, s.slots, sfx(s.strided));
      c.tol = "attention";
      c.op = Op::kAttention;
      c.type_a = kv;
      c.setup = [=](CaseBuffers& b) -> OpFn {
        Tensor q = b.random(DType::kF32, {s.t, s.hq, s.d}, pad_if(s.strided, 3, 13), s.q_scale);
        Tensor k = b.random(kv, {s.slots, s.hkv, s.d}, pad_if(s.strided, 3, 5));
        Tensor v = b.random(kv, {s.slots, s.hkv, s.dv}, pad_if(s.strided, 3, 7));
        const int64_t last = s.first_pos + s.t - 1;
        b.poison_rows(k, last + 1);  // unused slots: NaN must not leak into outputs
        b.poison_rows(v, last + 1);
        Tensor out = b.output(DType::kF32, {s.t, s.hq, s.dv}, pad_if(s.strided, 3, 3));
        auto pos = std::make_shared<std::vector<int32_t>>();
        for (int64_t t = 0; t < s.t; ++t) pos->push_back(static_cast<int32_t>(s.first_pos + t));
        const float scale = 1.0f / std::sqrt(static_cast<float>(s.d));
        return [=](Backend& be) { return be.attention(q, k, v, *pos, scale, out); };
      };
      cases.push_back(std::move(c));
    }
  }
}

// Elementwise binary ops (silu_mul, add) share their shapes and special-value cases.
void add_binary_cases(std::vector<OpCase>& cases, const char* op_name, Op op, float scale) {
  struct Shape {
    std::vector<int64_t> shape;
    bool strided;
    int alias;  // 0: separate out, 1: out = first operand, 2: out = second operand
    bool specials;
  };
  const Shape shapes[] = {{{1, 1}, false, 0, false},     {{7, 769}, true, 0, false},
                          {{1, 1536}, false, 1, false},  {{33, 1536}, false, 2, false},
                          {{3, 5, 7}, true, 1, false},   {{4, 67}, false, 0, true}};
  for (const Shape& s : shapes) {
    std::string dims;
    for (int64_t d : s.shape) dims += fmt::format("{}{}", dims.empty() ? "" : "x", d);
    OpCase c;
    c.name = fmt::format("{}/{}{}{}{}", op_name, dims, sfx(s.strided),
                         s.alias == 1 ? "_out_is_a" : (s.alias == 2 ? "_out_is_b" : ""),
                         s.specials ? "_nan_inf" : "");
    c.tol = op_name;
    c.op = op;
    c.expect_finite = !s.specials;
    c.setup = [=](CaseBuffers& b) -> OpFn {
      const int nd = static_cast<int>(s.shape.size());
      const auto pads = pad_if(s.strided, nd);
      Tensor a = s.alias == 1 ? b.inout(s.shape, pads, scale)
                              : b.random(DType::kF32, s.shape, pads, scale);
      Tensor c2 = s.alias == 2 ? b.inout(s.shape, pads, scale)
                               : b.random(DType::kF32, s.shape, pads, scale);
      if (s.specials) {
        const float vals[] = {NAN, INFINITY, -INFINITY, 100.0f, -100.0f, 1e-30f, -89.0f, 89.0f};
        for (int i = 0; i < 8; ++i) b.set_f32(a, 3 * i + 1, vals[i]);
        b.set_f32(c2, 40, NAN);
        b.set_f32(c2, 41, INFINITY);
      }
      Tensor out = s.alias == 1 ? a : (s.alias == 2 ? c2 : b.output(DType::kF32, s.shape, pads));
      if (op == Op::kSiluMul) return [=](Backend& be) { return be.silu_mul(a, c2, out); };
      return [=](Backend& be) { return be.add(a, c2, out); };
    };
    cases.push_back(std::move(c));
  }
}

void add_convert_cases(std::vector<OpCase>& cases) {
  struct Shape {
    std::vector<int64_t> shape;
    bool src_strided, dst_strided, specials;
  };
  const Shape shapes[] = {{{1}, false, false, false},          {{7, 769}, true, false, false},
                          {{5, 3, 64}, true, true, false},     {{2, 33}, false, true, false},
                          {{4, 40}, false, false, true}};
  for (DType dst : {DType::kF32, DType::kF16, DType::kBF16}) {
    for (const Shape& s : shapes) {
      std::string dims;
      for (int64_t d : s.shape) dims += fmt::format("{}{}", dims.empty() ? "" : "x", d);
      OpCase c;
      c.name = fmt::format("convert/f32_to_{}_{}{}{}{}", dtype_name(dst), dims,
                           s.src_strided ? "_src_strided" : "", s.dst_strided ? "_dst_strided" : "",
                           s.specials ? "_specials" : "");
      c.tol = fmt::format("convert_{}", dtype_name(dst));
      c.op = Op::kConvert;
      c.type_b = dst;
      c.expect_finite = !s.specials;
      c.setup = [=](CaseBuffers& b) -> OpFn {
        const int nd = static_cast<int>(s.shape.size());
        Tensor src = b.random(DType::kF32, s.shape, pad_if(s.src_strided, nd), 50.0f);
        if (s.specials) {
          // NaN, infinities, f32 subnormals, f16 subnormals / overflow, round-to-even ties.
          const float vals[] = {NAN,          INFINITY,         -INFINITY,    1e-40f,
                                -3e-39f,      5.9604645e-8f,    3.0e-5f,      -6.1e-5f,
                                65504.0f,     65520.0f,         70000.0f,     -1e10f,
                                1.00390625f,  1.01171875f,      1.00048828f,  1.00146484f,
                                -2.0f,        0.0f,             -0.0f,        3.3895314e38f};
          for (int i = 0; i < 20; ++i) b.set_f32(src, 2 * i, vals[i]);
        }
        Tensor out = b.output(dst, s.shape, pad_if(s.dst_strided, nd));
        return [=](Backend& be) { return be.convert(src, out); };
      };
      cases.push_back(std::move(c));
    }
  }
}

// Block-type matmul at the CUDA kernels' boundaries: M = 8 (the GEMV's largest), 9 and 31 (the
// tiled kernel), 130 (f16 slabs + cuBLASLt); N not a multiple of the 32-row GEMV CTA or the 64-wide
// tile; K of 1056 crosses the GEMV's 1024-value chunk with a one-group tail.
void add_gguf_matmul_cases(std::vector<OpCase>& cases) {
  const DType types[] = {DType::kQ4_0, DType::kQ4_1, DType::kQ8_0, DType::kQ4_K, DType::kQ6_K};
  struct Shape {
    int64_t m, n, k32, kk;  // k for 32-value blocks, for 256-value K-quant blocks
    bool strided;
  };
  const Shape shapes[] = {{8, 97, 1056, 1280, true},
                          {9, 65, 800, 768, false},
                          {31, 7, 96, 256, true},
                          {130, 71, 1056, 768, true}};
  for (DType type : types) {
    const bool kquant = type == DType::kQ4_K || type == DType::kQ6_K;
    for (const Shape& s : shapes) {
      const int64_t k = kquant ? s.kk : s.k32;
      OpCase c;
      c.name = fmt::format("matmul/{}_m{}_n{}_k{}{}_gguf", dtype_name(type), s.m, s.n, k,
                           sfx(s.strided));
      c.tol = "matmul";
      c.op = Op::kMatmul;
      c.type_a = type;
      c.setup = [=](CaseBuffers& b) -> OpFn {
        Tensor x = b.random(DType::kF32, {s.m, k}, pad_if(s.strided, 2, 5));
        Tensor w = b.random_weights(type, s.n, k);
        Tensor out = b.output(DType::kF32, {s.m, s.n}, pad_if(s.strided, 2, 2));
        return [=](Backend& be) { return be.matmul(x, w, out); };
      };
      cases.push_back(std::move(c));
    }
  }
}

}  // namespace

std::vector<OpCase> all_cases() {
  std::vector<OpCase> cases;
  add_embedding_cases(cases);
  add_matmul_cases(cases);
  add_gguf_matmul_cases(cases);
  add_rms_norm_cases(cases);
  add_rope_cases(cases);
  add_attention_cases(cases);
  add_binary_cases(cases, "silu_mul", Op::kSiluMul, 6.0f);
  add_binary_cases(cases, "add", Op::kAdd, 2.0f);
  add_convert_cases(cases);
  add_paged_cases(cases);
  add_moe_cases(cases);
  add_fp8_cases(cases);
  add_int8_cases(cases);
  add_sample_cases(cases);
  add_memory_cases(cases);
  add_batched_cases(cases);
  return cases;
}

}  // namespace tessera::ops_test
