// The tests/ops registry as gtest: one test per (case, backend under test), each run against
// the reference backend on identical seeded inputs. Backends this build or CPU lacks (CUDA
// here, AVX-512 on AVX2 machines) are reported skipped, never passed. With --perf or
// TESSERA_OPS_PERF=1, cases that passed are also timed on the backend under test.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cctype>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <set>
#include <string>

#include "kernels/cpu/ops.h"
#include "src/backend/host_backend.h"
#include "tests/ops/ops_harness.h"

namespace tessera::ops_test {
namespace {

const std::vector<OpCase>& cases() {
  static const std::vector<OpCase> kCases = all_cases();
  return kCases;
}

const std::vector<BackendEntry>& backends() {
  static const std::vector<BackendEntry> kBackends = backends_under_test();
  return kBackends;
}

uint64_t seed_for(const std::string& name) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a: a stable seed per case name
  for (char ch : name) h = (h ^ static_cast<uint8_t>(ch)) * 1099511628211ull;
  return h;
}

// Forces the CPU op kernels to one ISA for the duration of a test.
class IsaScope {
 public:
  explicit IsaScope(const std::optional<kernels::cpu::Isa>& isa) {
    if (isa) kernels::cpu::force_ops_isa(*isa);
  }
  ~IsaScope() { kernels::cpu::reset_ops_isa(); }
};

void time_case(const std::string& label, const OpFn& op, backend::Backend& be) {
  using Clock = std::chrono::steady_clock;
  Status warm = op(be);
  if (!warm.ok()) return;
  int iters = 0;
  const auto start = Clock::now();
  double elapsed_s = 0.0;
  while (elapsed_s < 0.2 && iters < 100000) {
    (void)op(be);
    ++iters;
    elapsed_s = std::chrono::duration<double>(Clock::now() - start).count();
  }
  std::printf("[ perf ] %-70s %10.2f us/op (%d iters)\n", label.c_str(), 1e6 * elapsed_s / iters,
              iters);
}

using Param = std::tuple<int, int>;  // (case index, backend index)

class OpsRegistry : public ::testing::TestWithParam<Param> {};

TEST_P(OpsRegistry, MatchesReference) {
  const OpCase& c = cases()[std::get<0>(GetParam())];
  const BackendEntry& entry = backends()[std::get<1>(GetParam())];
  if (!entry.make) GTEST_SKIP() << entry.name << ": " << entry.skip_reason;
  IsaScope isa(entry.isa);
  auto target = entry.make();
  auto reference = backend::make_reference_backend();
  if (!target->supports(c.op, c.type_a, c.type_b)) {
    GTEST_SKIP() << entry.name << " does not support " << c.name;
  }
  ASSERT_TRUE(reference->supports(c.op, c.type_a, c.type_b)) << c.name;

  const uint64_t seed = seed_for(c.name);
  CaseBuffers ref_bufs(seed);
  CaseBuffers tgt_bufs(seed);
  const OpFn ref_op = c.setup(ref_bufs);
  const OpFn tgt_op = c.setup(tgt_bufs);
  ref_bufs.snapshot_inputs();
  tgt_bufs.snapshot_inputs();
  const Status ref_status = ref_op(*reference);
  ASSERT_TRUE(ref_status.ok()) << "reference: " << ref_status.to_string();
  const Status tgt_status = tgt_op(*target);
  ASSERT_TRUE(tgt_status.ok()) << entry.name << ": " << tgt_status.to_string();
  const std::string failure = compare_case(c, ref_bufs, tgt_bufs);
  ASSERT_TRUE(failure.empty()) << c.name << " on " << entry.name << ": " << failure;

  if (perf_mode()) time_case(fmt::format("{} [{}]", c.name, entry.name), tgt_op, *target);
}

std::string param_name(const ::testing::TestParamInfo<Param>& info) {
  std::string name = cases()[std::get<0>(info.param)].name + "__" +
                     backends()[std::get<1>(info.param)].name;
  for (char& ch : name) {
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  }
  return name;
}

INSTANTIATE_TEST_SUITE_P(Ops, OpsRegistry,
                         ::testing::Combine(::testing::Range(0, static_cast<int>(cases().size())),
                                            ::testing::Range(0, static_cast<int>(backends().size()))),
                         param_name);

TEST(OpsRegistryMeta, CaseNamesAreUniqueAndEveryOpIsCovered) {
  std::set<std::string> names;
  std::set<int> ops;
  for (const OpCase& c : cases()) {
    EXPECT_TRUE(names.insert(c.name).second) << "duplicate case " << c.name;
    ops.insert(static_cast<int>(c.op));
    (void)tolerance(c.tol);  // every case names a row of the table
  }
  EXPECT_EQ(ops.size(), static_cast<size_t>(backend::Op::kMatmulBatched) + 1)
      << "every Backend op needs cases";
}

}  // namespace
}  // namespace tessera::ops_test

namespace tessera::ops_test {
namespace {

// A backend that is the reference with one planted bug; the harness must catch each.
class BrokenBackend final : public backend::HostBackend {
 public:
  enum class Bug {
    kUnwrittenElement,
    kWritePastEnd,
    kSmallError,
    kReadsUnusedKv,
    kTouchesInput,
    kReadsPastSeqEnd,
    kSwapsExperts,
  };
  explicit BrokenBackend(Bug bug) : bug_(bug), ref_(backend::make_reference_backend()) {}
  std::string_view name() const override { return "broken"; }
  bool supports(backend::Op op, DType a, DType b) const override {
    return ref_->supports(op, a, b);
  }
  Status embedding(const Tensor& t, std::span<const int32_t> ids, Tensor out) override {
    return ref_->embedding(t, ids, out);
  }
  Status matmul(const Tensor& x, const Tensor& w, Tensor out) override {
    return ref_->matmul(x, w, out);
  }
  Status rms_norm(const Tensor& x, const Tensor& w, float eps, Tensor out) override {
    TESSERA_RETURN_IF_ERROR(ref_->rms_norm(x, w, eps, out));
    if (bug_ == Bug::kSmallError) {  // 0.2% off on one row of seven: NMSE ~ 6e-7
      for (int64_t i = 0; i < out.dim(-1); ++i) out.data_as<float>()[i] *= 1.002f;
    }
    return Status::ok_status();
  }
  Status rope(Tensor x, std::span<const int32_t> pos, const backend::RopeParams& p) override {
    return ref_->rope(x, pos, p);
  }
  Status attention(const Tensor& q, const Tensor& k, const Tensor& v,
                   std::span<const int32_t> pos, float scale, Tensor out) override {
    if (bug_ != Bug::kReadsUnusedKv) return ref_->attention(q, k, v, pos, scale, out);
    std::vector<int32_t> further(pos.begin(), pos.end());
    for (int32_t& p : further) p = std::min<int32_t>(p + 1, static_cast<int32_t>(k.dim(0) - 1));
    return ref_->attention(q, k, v, further, scale, out);
  }
  Status silu_mul(const Tensor& g, const Tensor& u, Tensor out) override {
    return ref_->silu_mul(g, u, out);
  }
  Status add(const Tensor& a, const Tensor& b, Tensor out) override {
    if (bug_ == Bug::kTouchesInput) const_cast<float*>(b.data_as<const float>())[0] += 1.0f;
    TESSERA_RETURN_IF_ERROR(ref_->add(a, b, out));
    const int64_t last = out.dim(-1) - 1;
    float* row0 = out.data_as<float>();
    if (bug_ == Bug::kUnwrittenElement) row0[last] = NAN;
    if (bug_ == Bug::kWritePastEnd) row0[last + 1] = 0.0f;
    return Status::ok_status();
  }
  Status convert(const Tensor& s, Tensor d) override { return ref_->convert(s, d); }
  Status paged_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                         std::span<const int32_t> query_start, std::span<const int32_t> seq_lens,
                         const Tensor& block_tables, float scale, Tensor out) override {
    if (bug_ != Bug::kReadsPastSeqEnd) {
      return ref_->paged_attention(q, k, v, query_start, seq_lens, block_tables, scale, out);
    }
    std::vector<int32_t> longer(seq_lens.begin(), seq_lens.end());
    longer[0] += 1;  // sequence 0 also reads the (poisoned) slot after its last token
    return ref_->paged_attention(q, k, v, query_start, longer, block_tables, scale, out);
  }
  Status kv_append(const Tensor& k, const Tensor& v, std::span<const int32_t> slots,
                   Tensor k_cache, Tensor v_cache) override {
    return ref_->kv_append(k, v, slots, k_cache, v_cache);
  }
  Status moe_route(const Tensor& logits, const Tensor& bias, const backend::MoeRouteParams& p,
                   Tensor ids, Tensor weights) override {
    TESSERA_RETURN_IF_ERROR(ref_->moe_route(logits, bias, p, ids, weights));
    if (bug_ == Bug::kSwapsExperts) {  // token 0's first two experts swapped
      std::swap(ids.data_as<int32_t>()[0], ids.data_as<int32_t>()[1]);
    }
    return Status::ok_status();
  }
  Status moe_grouped_matmul(const Tensor& x, const Tensor& w, const Tensor& ids,
                            Tensor out) override {
    return ref_->moe_grouped_matmul(x, w, ids, out);
  }

 private:
  Bug bug_;
  std::unique_ptr<backend::Backend> ref_;
};

std::string run_against(const std::string& case_name, BrokenBackend::Bug bug) {
  for (const OpCase& c : cases()) {
    if (c.name != case_name) continue;
    BrokenBackend broken(bug);
    auto reference = backend::make_reference_backend();
    CaseBuffers rb(1), tb(1);
    const OpFn r = c.setup(rb), t = c.setup(tb);
    rb.snapshot_inputs();
    tb.snapshot_inputs();
    EXPECT_TRUE(r(*reference).ok());
    EXPECT_TRUE(t(broken).ok());
    return compare_case(c, rb, tb);
  }
  ADD_FAILURE() << "no case " << case_name;
  return "";
}

TEST(OpsRegistryMeta, HarnessCatchesPlantedBugs) {
  using Bug = BrokenBackend::Bug;
  EXPECT_NE(run_against("add/7x769_strided", Bug::kUnwrittenElement).find("NaN mismatch"),
            std::string::npos);
  EXPECT_NE(run_against("add/7x769_strided", Bug::kWritePastEnd).find("overwritten"),
            std::string::npos);
  EXPECT_NE(run_against("add/7x769_strided", Bug::kTouchesInput).find("modified"),
            std::string::npos);
  EXPECT_NE(run_against("rms_norm/7x576_strided", Bug::kSmallError).find("NMSE"),
            std::string::npos);
  EXPECT_NE(run_against("attention/decode_gqa_kvf32_t1_hq9_hkv3_d64_dv64_slots40_strided",
                        Bug::kReadsUnusedKv)
                .find("NaN"),
            std::string::npos);
  EXPECT_NE(run_against("paged_attention/mixed_bs16_gqa1_kvf32_hq4_hkv4_d64_dv64_bs16_strided",
                        Bug::kReadsPastSeqEnd)
                .find("NaN"),
            std::string::npos);
  EXPECT_NE(run_against("moe_route/v3_sigmoid_bias_e16_top2_g4_kg2_norm_t7_strided",
                        Bug::kSwapsExperts)
                .find("bitwise"),
            std::string::npos);
}

}  // namespace
}  // namespace tessera::ops_test
