// Non-matmul op micro-benchmark on the CPU backend at SmolLM2-135M shapes (hidden 576, 9/3
// heads of 64, ffn 1536): decode (T=1) and prefill (T=512); decode attention at 1k and 8k
// context for SmolLM2, Llama-3-8B and MLA-latent shapes.
// Prints the time per op beside its memory floor (bytes moved / an assumed 20 GB/s per core).
// Usage: ops_bench [--threads N] [--isa scalar|avx2|avx512] [--attention (attention only)]
#include <chrono>
#include <ctime>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu/ops.h"
#include "tessera/backend/backend.h"
#include "tessera/core/tensor.h"
#include "tessera/core/thread_pool.h"

namespace {

using tessera::DType;
using tessera::OwnedTensor;
using tessera::Status;
using tessera::Tensor;

constexpr double kAssumedBytesPerSecondPerCore = 20e9;

OwnedTensor random_tensor(DType dtype, std::initializer_list<int64_t> shape, std::mt19937& rng) {
  OwnedTensor t(dtype, shape);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  const int64_t n = t.view().numel();
  if (dtype == DType::kF32) {
    for (int64_t i = 0; i < n; ++i) t.data_as<float>()[i] = dist(rng);
  } else {
    for (int64_t i = 0; i < n; ++i) {
      t.data_as<uint16_t>()[i] = tessera::kernels::f32_to_f16(dist(rng));
    }
  }
  return t;
}

void run(const char* label, double bytes, int threads, const std::function<Status()>& op) {
  using Clock = std::chrono::steady_clock;
  if (!op().ok()) {
    std::printf("%-44s FAILED\n", label);
    return;
  }
  int iters = 0;
  const auto start = Clock::now();
  const std::clock_t cpu_start = std::clock();
  double elapsed = 0.0;
  while (elapsed < 0.3) {
    (void)op();
    ++iters;
    elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  }
  const double us = 1e6 * elapsed / iters;
  // Process CPU time per call: with --threads 1 on a shared machine it is the steadier figure.
  const double cpu_us =
      1e6 * static_cast<double>(std::clock() - cpu_start) / CLOCKS_PER_SEC / iters;
  const double floor_us = 1e6 * bytes / (kAssumedBytesPerSecondPerCore * threads);
  std::printf("%-44s %10.2f us   floor %8.2f us   (%.1f%% of floor)   cpu %10.2f us\n", label, us,
              floor_us, 100.0 * floor_us / us, cpu_us);
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 0;
  bool attention_only = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--attention") == 0) attention_only = true;
  }
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], "--threads") == 0) threads = std::atoi(argv[i + 1]);
    if (std::strcmp(argv[i], "--isa") == 0) {
      const std::string isa = argv[i + 1];
      using tessera::kernels::cpu::Isa;
      const Isa want =
          isa == "scalar" ? Isa::kScalar : (isa == "avx2" ? Isa::kAvx2 : Isa::kAvx512);
      if (!tessera::kernels::cpu::force_ops_isa(want)) {
        std::fprintf(stderr, "this CPU cannot run %s\n", isa.c_str());
        return 1;
      }
    }
  }
  tessera::configure_default_thread_pool(threads);
  const int num_threads = tessera::default_thread_pool().num_threads();
  std::printf("ops_bench: isa %s, %d threads\n",
              tessera::kernels::cpu::isa_name(tessera::kernels::cpu::ops_isa()), num_threads);
  auto be = tessera::backend::make_cpu_backend();
  std::mt19937 rng(7);
  const int64_t hidden = 576, ffn = 1536, hq = 9, hkv = 3, d = 64;

  for (int64_t tokens : {1, 512}) {
    if (attention_only) break;
    OwnedTensor x = random_tensor(DType::kF32, {tokens, hidden}, rng);
    OwnedTensor w = random_tensor(DType::kF32, {hidden}, rng);
    OwnedTensor out = random_tensor(DType::kF32, {tokens, hidden}, rng);
    OwnedTensor gate = random_tensor(DType::kF32, {tokens, ffn}, rng);
    OwnedTensor up = random_tensor(DType::kF32, {tokens, ffn}, rng);
    OwnedTensor q = random_tensor(DType::kF32, {tokens, hq, d}, rng);
    OwnedTensor k32 = random_tensor(DType::kF32, {tokens, hkv, d}, rng);
    OwnedTensor kv16(DType::kF16, {tokens, hkv, d});
    std::vector<int32_t> pos(tokens);
    for (int64_t t = 0; t < tokens; ++t) pos[t] = static_cast<int32_t>(1000 + t);
    tessera::backend::RopeParams rope;
    rope.rot_dim = 64;
    rope.theta = 100000.0f;
    const double act = 4.0 * tokens * hidden;
    char label[128];
    std::snprintf(label, sizeof(label), "rms_norm   T=%lld", static_cast<long long>(tokens));
    run(label, 2 * act, num_threads,
        [&] { return be->rms_norm(x.view(), w.view(), 1e-5f, out.view()); });
    std::snprintf(label, sizeof(label), "add        T=%lld", static_cast<long long>(tokens));
    run(label, 3 * act, num_threads, [&] { return be->add(x.view(), out.view(), out.view()); });
    std::snprintf(label, sizeof(label), "silu_mul   T=%lld", static_cast<long long>(tokens));
    run(label, 3 * 4.0 * tokens * ffn, num_threads,
        [&] { return be->silu_mul(gate.view(), up.view(), gate.view()); });
    std::snprintf(label, sizeof(label), "rope q     T=%lld", static_cast<long long>(tokens));
    run(label, 2 * 4.0 * tokens * hq * d, num_threads,
        [&] { return be->rope(q.view(), pos, rope); });
    std::snprintf(label, sizeof(label), "convert f16 T=%lld", static_cast<long long>(tokens));
    run(label, 6.0 * tokens * hkv * d, num_threads,
        [&] { return be->convert(k32.view(), kv16.view()); });
  }

  // Decode attention (T = 1) at SmolLM2 (9/3 x 64), Llama-3-8B (32/8 x 128) and the MLA latent
  // layout (16 heads over one 576-wide latent row whose first 512 values are V, paged, bs 16).
  struct AttnShape {
    const char* name;
    int64_t hq, hkv, d, dv;
    bool mla;
  };
  const AttnShape attn_shapes[] = {{"smollm2", 9, 3, 64, 64, false},
                                   {"llama8b", 32, 8, 128, 128, false},
                                   {"mla16", 16, 1, 576, 512, true}};
  for (const AttnShape& sh : attn_shapes) {
    for (DType kv : {DType::kF32, DType::kF16}) {
      for (int64_t ctx : {1024, 8192}) {
        const int64_t elem = kv == DType::kF32 ? 4 : 2;
        OwnedTensor q = random_tensor(DType::kF32, {1, sh.hq, sh.d}, rng);
        OwnedTensor out(DType::kF32, {1, sh.hq, sh.dv});
        char label[128];
        std::snprintf(label, sizeof(label), "attention decode %s ctx=%lld kv=%s", sh.name,
                      static_cast<long long>(ctx), kv == DType::kF32 ? "f32" : "f16");
        if (!sh.mla) {
          OwnedTensor k = random_tensor(kv, {ctx, sh.hkv, sh.d}, rng);
          OwnedTensor v = random_tensor(kv, {ctx, sh.hkv, sh.dv}, rng);
          const std::vector<int32_t> pos = {static_cast<int32_t>(ctx - 1)};
          const double bytes = 1.0 * ctx * sh.hkv * (sh.d + sh.dv) * elem;
          run(label, bytes, num_threads, [&] {
            return be->attention(q.view(), k.view(), v.view(), pos, 0.125f, out.view());
          });
          continue;
        }
        const int64_t bs = 16, blocks = ctx / bs;
        OwnedTensor k = random_tensor(kv, {blocks, bs, 1, sh.d}, rng);
        const Tensor kt = k.view();
        const Tensor v = Tensor(kt.data(), kt.dtype(), {blocks, bs, 1, sh.dv})
                             .with_strides({kt.stride_bytes(0), kt.stride_bytes(1),
                                            kt.stride_bytes(2), kt.stride_bytes(3)});
        std::vector<int32_t> table(blocks);
        for (int64_t i = 0; i < blocks; ++i) table[i] = static_cast<int32_t>(i);
        const Tensor tables(table.data(), DType::kI32, {1, blocks});
        const std::vector<int32_t> query_start = {0, 1}, seq_lens = {static_cast<int32_t>(ctx)};
        const double bytes = 1.0 * ctx * sh.d * elem;  // V is part of the latent row
        run(label, bytes, num_threads, [&] {
          return be->paged_attention(q.view(), kt, v, query_start, seq_lens, tables, 0.05f,
                                     out.view());
        });
      }
    }
  }
  return 0;
}
