// GGUF block-quantized weights on a backend with no kernel for them (the CUDA backend today):
// LlamaModel dequantises such weights to f16 once at load. Checked on the CPU with a backend
// that forwards every op to the CPU backend but reports no block-type matmul or embedding, so
// SmolLM2 Q4_1 runs on f16 copies; its logits must track the native Q4_1 path closely (the
// only differences are f16 rounding of the dequantised values and the CPU Q4_1 path's Q8
// activations). Skipped when the model file is absent.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "src/backend/host_backend.h"
#include "tessera/backend/backend.h"
#include "tessera/model/model_loader.h"

namespace tessera::model {
namespace {

const std::string kModel = std::string(TESSERA_MODELS_DIR) + "/SmolLM2-135M-Instruct.Q4_1.gguf";

using backend::Backend;
using backend::Op;

// The CPU backend with block-quantized weights hidden from supports().
class PlainFloatOnly final : public backend::HostBackend {
 public:
  PlainFloatOnly() : cpu_(backend::make_cpu_backend()) {}
  std::string_view name() const override { return "plain-float-cpu"; }
  bool supports(Op op, DType a, DType b) const override {
    if ((op == Op::kMatmul || op == Op::kEmbedding) && dtype_info(a).is_quantized) return false;
    return cpu_->supports(op, a, b);
  }
  Status embedding(const Tensor& table, std::span<const int32_t> ids, Tensor out) override {
    if (dtype_info(table.dtype()).is_quantized) return unimplemented("embedding: block table");
    return cpu_->embedding(table, ids, out);
  }
  Status matmul(const Tensor& x, const Tensor& w, Tensor out) override {
    if (dtype_info(w.dtype()).is_quantized) return unimplemented("matmul: block weight");
    return cpu_->matmul(x, w, out);
  }
  Status rms_norm(const Tensor& x, const Tensor& w, float eps, Tensor out) override {
    return cpu_->rms_norm(x, w, eps, out);
  }
  Status rope(Tensor x, std::span<const int32_t> pos, const backend::RopeParams& p) override {
    return cpu_->rope(x, pos, p);
  }
  Status attention(const Tensor& q, const Tensor& k, const Tensor& v,
                   std::span<const int32_t> pos, float scale, Tensor out) override {
    return cpu_->attention(q, k, v, pos, scale, out);
  }
  Status silu_mul(const Tensor& g, const Tensor& u, Tensor out) override {
    return cpu_->silu_mul(g, u, out);
  }
  Status add(const Tensor& a, const Tensor& b, Tensor out) override { return cpu_->add(a, b, out); }
  Status convert(const Tensor& src, Tensor dst) override { return cpu_->convert(src, dst); }
  Status paged_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                         std::span<const int32_t> qs, std::span<const int32_t> lens,
                         const Tensor& tables, float scale, Tensor out) override {
    return cpu_->paged_attention(q, k, v, qs, lens, tables, scale, out);
  }
  Status kv_append(const Tensor& k, const Tensor& v, std::span<const int32_t> slots,
                   Tensor kc, Tensor vc) override {
    return cpu_->kv_append(k, v, slots, kc, vc);
  }
  Status moe_route(const Tensor& logits, const Tensor& bias, const backend::MoeRouteParams& p,
                   Tensor ids, Tensor weights) override {
    return cpu_->moe_route(logits, bias, p, ids, weights);
  }
  Status moe_grouped_matmul(const Tensor& x, const Tensor& w, const Tensor& ids,
                            Tensor out) override {
    return cpu_->moe_grouped_matmul(x, w, ids, out);
  }

 private:
  std::unique_ptr<Backend> cpu_;
};

// Teacher-forced logits of every position: f32 [tokens, vocab].
std::vector<float> all_logits(Model& m, const std::vector<int32_t>& tokens) {
  const int64_t n = static_cast<int64_t>(tokens.size());
  OwnedTensor logits(DType::kF32, {n, m.vocab_size()});
  m.reset();
  EXPECT_TRUE(m.forward(tokens, 0, true, logits.view()).ok());
  const float* p = logits.data_as<float>();
  return std::vector<float>(p, p + n * m.vocab_size());
}

TEST(GgufPlainWeights, SmolLM2OnF16CopiesTracksTheQ4_1Path) {
  if (!std::filesystem::exists(kModel)) GTEST_SKIP() << "model file absent: " << kModel;
  std::unique_ptr<Backend> cpu = backend::make_cpu_backend();
  PlainFloatOnly plain;
  LlamaOptions options;
  options.max_context = 64;
  Result<LoadedModel> native = load_model(kModel, cpu.get(), options);
  Result<LoadedModel> f16 = load_model(kModel, &plain, options);
  ASSERT_TRUE(native.ok()) << native.status().message();
  ASSERT_TRUE(f16.ok()) << f16.status().message();

  // "The capital of France is Paris.\n\nThe ..." in SmolLM2's vocabulary (its own greedy text).
  const std::vector<int32_t> tokens = {504, 3575, 282, 4649, 314, 7042, 30, 198,
                                       198, 504, 1797, 1918, 553, 314, 253, 1345};
  const int64_t vocab = native->model->vocab_size();
  const std::vector<float> la = all_logits(*native->model, tokens);
  const std::vector<float> lb = all_logits(*f16->model, tokens);
  int decisive = 0, agree = 0;
  for (size_t t = 0; t < tokens.size(); ++t) {
    const float* x = la.data() + t * vocab;
    const float* y = lb.data() + t * vocab;
    double dot = 0, nx = 0, ny = 0;
    for (int64_t i = 0; i < vocab; ++i) {
      dot += static_cast<double>(x[i]) * y[i];
      nx += static_cast<double>(x[i]) * x[i];
      ny += static_cast<double>(y[i]) * y[i];
    }
    // NOTE: the native path quantises activations to Q8 for its Q4_1 dot products; that alone
    // moves logits by about 1e-3 in cosine terms, so this is a loose bound.
    EXPECT_GT(dot / std::sqrt(nx * ny), 0.995) << "position " << t;
    std::vector<float> sorted(x, x + vocab);
    std::partial_sort(sorted.begin(), sorted.begin() + 2, sorted.end(), std::greater<float>());
    if (sorted[0] - sorted[1] < 0.5f) continue;  // near-tie: either order is right
    ++decisive;
    agree += std::max_element(x, x + vocab) - x == std::max_element(y, y + vocab) - y;
  }
  EXPECT_GE(decisive, 8);
  EXPECT_EQ(agree, decisive);
}

}  // namespace
}  // namespace tessera::model
