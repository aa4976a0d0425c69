// The tests/ops registry harness: cases x backends against the reference backend, in the
// style of ggml's test-backend-ops. A case builds its tensors from a seed (so the reference
// and the backend under test see identical inputs) and returns a closure that runs the op.
// Invariant: every compared output starts NaN-poisoned with sentinel bytes around it; inputs
// must come back unchanged; NaN/Inf positions must match; tolerances live in one table.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu/cpu_features.h"
#include "tessera/backend/backend.h"
#include "tessera/core/tensor.h"

namespace tessera::ops_test {

enum class Check { kBitwise, kNmse, kNmseCosine };
struct Tolerance {
  Check check = Check::kNmse;
  double max_nmse = 0.0;
  double max_one_minus_cos = 0.0;
};
// The one tolerance table, keyed by the case's tolerance class ("convert_f32", "matmul", ...).
Tolerance tolerance(const std::string& key);

// Tensors of one case run. Shapes are given outermost first; pads[d] extra elements are added
// to the stride of dim d (d < ndim - 1), making rows strided. Padding and a tail after each
// allocation hold NaN (inputs) or sentinel bytes (outputs).
class CaseBuffers {
 public:
  explicit CaseBuffers(uint64_t seed) : rng_(seed) {}

  // Random values with |v| in [0.1, 1] * scale, never zero; f32/f16/bf16.
  Tensor random(DType dtype, std::vector<int64_t> shape, std::vector<int64_t> pads = {},
                float scale = 1.0f);
  // [rows, cols] of any dtype: block types are quantized from random f32 rows.
  Tensor random_weights(DType dtype, int64_t rows, int64_t cols, float scale = 1.0f);
  // Compared output, NaN-poisoned.
  Tensor output(DType dtype, std::vector<int64_t> shape, std::vector<int64_t> pads = {});
  // Random f32 input that is also compared afterwards (in-place ops, aliased outputs).
  Tensor inout(std::vector<int64_t> shape, std::vector<int64_t> pads = {}, float scale = 1.0f);
  // Overwrites rows [begin, dim0) of a plain-float tensor with NaN (unused KV slots).
  void poison_rows(const Tensor& t, int64_t begin);
  // Sets logical element `index` (row-major) of an f32 tensor; for special-value cases.
  void set_f32(const Tensor& t, int64_t index, float value);

  std::mt19937_64& rng() { return rng_; }
  // A seeded uniform int in [lo, hi].
  int64_t uniform_int(int64_t lo, int64_t hi);

  struct Alloc {
    std::string role;  // "input" | "output" | "inout"
    std::unique_ptr<Buffer> buffer;
    size_t bytes = 0;
    std::vector<uint8_t> logical;  // 1 where a byte belongs to a logical element
    std::vector<uint8_t> snapshot;  // input bytes before the op
    Tensor view;
  };
  std::vector<Alloc>& allocs() { return allocs_; }
  // Records input snapshots; call after setup, before the op.
  void snapshot_inputs();

 private:
  Alloc& allocate(std::string role, DType dtype, const std::vector<int64_t>& shape,
                  const std::vector<int64_t>& pads, uint8_t fill);
  float random_value(float scale);

  std::mt19937_64 rng_;
  std::vector<Alloc> allocs_;
};

using OpFn = std::function<Status(backend::Backend&)>;

struct OpCase {
  std::string name;  // "rms_norm/rows7_cols769_strided"
  std::string tol;   // key into tolerance()
  backend::Op op;
  DType type_a = DType::kF32;  // for Backend::supports
  DType type_b = DType::kF32;
  bool expect_finite = true;  // reference output must be all finite
  std::function<OpFn(CaseBuffers&)> setup;
};

// Every case of the registry (ops_cases.cc).
std::vector<OpCase> all_cases();
// The paged KV op cases (ops_cases_paged.cc); all_cases() includes them.
void add_paged_cases(std::vector<OpCase>& cases);
// The mixture-of-experts op cases (ops_cases_moe.cc); all_cases() includes them.
void add_moe_cases(std::vector<OpCase>& cases);
// The block-scaled FP8 matmul cases (ops_cases_fp8.cc); all_cases() includes them.
void add_fp8_cases(std::vector<OpCase>& cases);
// The INT8 matmul cases (ops_cases_int8.cc); all_cases() includes them.
void add_int8_cases(std::vector<OpCase>& cases);
// The sampling cases (ops_cases_sample.cc); all_cases() includes them.
void add_sample_cases(std::vector<OpCase>& cases);
// The memory op cases: copy and moe_combine (ops_cases_memory.cc); all_cases() includes them.
void add_memory_cases(std::vector<OpCase>& cases);
// The batched matmul cases (ops_cases_batched.cc); all_cases() includes them.
void add_batched_cases(std::vector<OpCase>& cases);

// A backend under test: the CPU backend at one ISA, or CUDA (absent for now).
struct BackendEntry {
  std::string name;
  std::function<std::unique_ptr<backend::Backend>()> make;  // null when unavailable
  std::optional<kernels::cpu::Isa> isa;
  std::string skip_reason;
};
std::vector<BackendEntry> backends_under_test();

// Compares one case's buffers (target vs reference); empty string when it passes.
std::string compare_case(const OpCase& c, CaseBuffers& ref, CaseBuffers& target);

// --perf or TESSERA_OPS_PERF=1.
bool perf_mode();

}  // namespace tessera::ops_test
