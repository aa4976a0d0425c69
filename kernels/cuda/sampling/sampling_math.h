// Arithmetic shared bit for bit by the reference sampler (kernels/ref/sampling.cc) and the CUDA
// sampling kernel: Philox4x32-10, the 53-bit uniform of (seed, step), a deterministic exp, the
// order key of a logit, and the scalar bin walks of the radix selection.
// Invariant: plain C++ under a host compiler and __host__ __device__ under nvcc; device code uses
// the _rn intrinsics so nothing is contracted into an FMA, hence host and device agree exactly.
// NOTE: the host side relies on no FMA contraction either: true for the x86-64 baseline build;
// a build with -march=native (FMA) must compile includers with -ffp-contract=off.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define TESSERA_HD __host__ __device__ __forceinline__
#else
#define TESSERA_HD inline
#endif

namespace tessera::kernels::sampling {

using std::floor;

// One row's parameters at kernel level (mirrors backend::SampleParams; 32 bytes, no padding).
struct SampleRowSpec {
  float temperature = 1.0f;  // <= 0: greedy
  int32_t top_k = 0;         // <= 0 or >= V: off
  float top_p = 1.0f;        // >= 1: off
  float min_p = 0.0f;        // <= 0: off
  uint64_t seed = 0;
  uint64_t step = 0;
};
static_assert(sizeof(SampleRowSpec) == 32, "SampleRowSpec travels as 8 int32 words");

// ---- Philox4x32-10 (Salmon et al., SC'11): counter {c0..c3}, key {k0, k1}.
struct Philox4 {
  uint32_t v[4];
};

TESSERA_HD void mulhilo32(uint32_t a, uint32_t b, uint32_t* hi, uint32_t* lo) {
  const uint64_t p = static_cast<uint64_t>(a) * b;
  *hi = static_cast<uint32_t>(p >> 32);
  *lo = static_cast<uint32_t>(p);
}

TESSERA_HD Philox4 philox4x32_10(Philox4 ctr, uint32_t k0, uint32_t k1) {
  constexpr uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;
  constexpr uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      k0 += kW0;
      k1 += kW1;
    }
    uint32_t hi0, lo0, hi1, lo1;
    mulhilo32(kM0, ctr.v[0], &hi0, &lo0);
    mulhilo32(kM1, ctr.v[2], &hi1, &lo1);
    const Philox4 next = {{hi1 ^ ctr.v[1] ^ k0, lo1, hi0 ^ ctr.v[3] ^ k1, lo0}};
    ctr = next;
  }
  return ctr;
}

// u in [0, 1) with 53 random bits: key = seed, counter = (step, 0); u = (x0 << 21 | x1 >> 11)
// * 2^-53 (integer bits, then one exact scaling).
TESSERA_HD double philox_uniform(uint64_t seed, uint64_t step) {
  const Philox4 ctr = {{static_cast<uint32_t>(step), static_cast<uint32_t>(step >> 32), 0u, 0u}};
  const Philox4 x =
      philox4x32_10(ctr, static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
  const uint64_t bits = (static_cast<uint64_t>(x.v[0]) << 21) | (x.v[1] >> 11);
  return static_cast<double>(bits) * (1.0 / 9007199254740992.0);  // 2^-53
}

// ---- Deterministic double arithmetic (no FMA contraction on the device).
TESSERA_HD double dmul(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dmul_rn(a, b);
#else
  return a * b;
#endif
}
TESSERA_HD double dadd(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dadd_rn(a, b);
#else
  return a + b;
#endif
}
// f32 division, correctly rounded on both sides (nvcc's `/` is IEEE unless fast math).
TESSERA_HD float fdiv(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fdiv_rn(a, b);
#else
  return a / b;
#endif
}

TESSERA_HD double bits_to_double(uint64_t bits) {
#if defined(__CUDA_ARCH__)
  return __longlong_as_double(static_cast<long long>(bits));
#else
  double d;
  std::memcpy(&d, &bits, sizeof d);
  return d;
#endif
}

// exp(d) for d <= 0 (relative error ~1e-16), the same bits on host and device: Cody-Waite
// reduction d = n ln2 + r, |r| <= ln2 / 2, a degree-13 Taylor polynomial, then * 2^n.
// d < -700 (or NaN) gives 0; exp(0) is exactly 1.
TESSERA_HD double det_exp(double d) {
  if (!(d >= -700.0)) return 0.0;
  if (d >= 0.0) return 1.0;  // callers pass s - s_max <= 0
  constexpr double kLog2e = 1.4426950408889634;
  constexpr double kLn2Hi = 6.93147180369123816490e-01;  // upper 32 bits of ln 2
  constexpr double kLn2Lo = 1.90821492927058770002e-10;
  double n = dadd(dmul(d, kLog2e), 0.5);
  n = floor(n);  // exact on both sides
  const double r = dadd(dadd(d, -dmul(n, kLn2Hi)), -dmul(n, kLn2Lo));
  // Horner over 1/k!, k = 13..0.
  constexpr double kInvFact[14] = {1.0,
                                   1.0,
                                   0.5,
                                   1.6666666666666666e-01,
                                   4.1666666666666664e-02,
                                   8.3333333333333332e-03,
                                   1.3888888888888889e-03,
                                   1.9841269841269841e-04,
                                   2.4801587301587302e-05,
                                   2.7557319223985893e-06,
                                   2.7557319223985888e-07,
                                   2.5052108385441720e-08,
                                   2.0876756987868100e-09,
                                   1.6059043836821613e-10};
  double p = kInvFact[13];
  for (int k = 12; k >= 0; --k) p = dadd(dmul(p, r), kInvFact[k]);
  const int64_t e = static_cast<int64_t>(n) + 1023;  // n in [-1010, 0]
  return dmul(p, bits_to_double(static_cast<uint64_t>(e) << 52));
}

// ---- Order of a row: descending logit, ties to the lower id. The key is monotone in the logit
// (-inf lowest of the numbers, -0 == +0); NaN gets key 0, below everything (it never wins, weight
// 0).
TESSERA_HD uint32_t order_key(float x) {
  uint32_t b;
#if defined(__CUDA_ARCH__)
  b = __float_as_uint(x);
#else
  std::memcpy(&b, &x, sizeof b);
#endif
  if ((b & 0x7fffffffu) > 0x7f800000u) return 0u;  // NaN
  if (b == 0x80000000u) b = 0u;                    // -0 ties with +0
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

// The weight of logit x: exp(x / T - s_max) with s_max = x_max / T, both f32 quotients.
TESSERA_HD double logit_weight(float x, float temperature, float s_max) {
  if (x != x) return 0.0;
  return det_exp(dadd(static_cast<double>(fdiv(x, temperature)), -static_cast<double>(s_max)));
}

// ---- Radix selection over order keys, 8 bits per pass from the top (4 passes). Bins are
// walked from 255 down (descending keys = the row's order).
constexpr int kRadixBins = 256;

// Count selection: the bin holding the element of rank `rank` (1-based) among the counted ones;
// `*above` gets the count in higher bins. Returns -1 when fewer than `rank` were counted.
TESSERA_HD int pick_count_bin(const uint32_t* hist, uint32_t rank, uint32_t* above) {
  uint32_t before = 0;
  for (int b = kRadixBins - 1; b >= 0; --b) {
    if (before + hist[b] >= rank) {
      *above = before;
      return b;
    }
    before += hist[b];
  }
  *above = before;
  return -1;
}

// Mass selection: the first bin (descending) where offset + mass above + its mass crosses
// `target` (`strict`: > target, else >= target). `*before` gets offset + the mass above it
// (summed bin by bin in this order). When no bin crosses, returns the last bin of positive mass
// (or -1 if none) and sets *crossed = false.
TESSERA_HD int pick_mass_bin(const double* mass, double offset, double target, bool strict,
                             double* before, bool* crossed) {
  double c = offset;
  int last_positive = -1;
  double before_last = offset;
  for (int b = kRadixBins - 1; b >= 0; --b) {
    if (mass[b] > 0.0) {
      const double after = dadd(c, mass[b]);
      if (strict ? after > target : after >= target) {
        *before = c;
        *crossed = true;
        return b;
      }
      last_positive = b;
      before_last = c;
      c = after;
    }
  }
  *before = before_last;
  *crossed = false;
  return last_positive;
}

// Within the `count` tied elements of weight w (ascending ids) that follow mass `before`: the
// index of the first whose cumulative mass crosses `target` (same rule as pick_mass_bin), or
// count - 1 when none does.
TESSERA_HD uint32_t pick_tie_index(double before, double w, uint32_t count, double target,
                                   bool strict) {
  double c = before;
  for (uint32_t i = 0; i < count; ++i) {
    c = dadd(c, w);
    if (strict ? c > target : c >= target) return i;
  }
  return count == 0 ? 0 : count - 1;
}

// Whether (key, id) is inside a prefix of the order that ends at (end_key, end_id).
TESSERA_HD bool in_prefix(uint32_t key, int64_t id, uint32_t end_key, int64_t end_id) {
  return key > end_key || (key == end_key && id <= end_id);
}

// The logit of an order key (inverse of order_key for non-NaN keys; -0 comes back as +0).
TESSERA_HD float key_logit(uint32_t key) {
  const uint32_t b = (key & 0x80000000u) ? (key & 0x7fffffffu) : ~key;
#if defined(__CUDA_ARCH__)
  return __uint_as_float(b);
#else
  float x;
  std::memcpy(&x, &b, sizeof x);
  return x;
#endif
}

// One radix selection, advanced pass by pass: each pass the caller histograms the elements it
// considers whose key matches (key & mask) == prefix by bin (key >> shift()) & 255, then calls
// step(). After kRadixPasses passes `prefix` is the selected key and `tie_count` the number of
// considered elements with that key.
constexpr int kRadixPasses = 4;

struct CountSelect {  // the element of rank `rank` (1-based) in the order
  uint32_t rank = 1;
  uint32_t prefix = 0, mask = 0;
  uint32_t above = 0;  // considered elements with a larger key
  uint32_t tie_count = 0;
  int pass = 0;
  bool found = true;

  TESSERA_HD int shift() const { return 24 - 8 * pass; }
  TESSERA_HD bool matches(uint32_t key) const { return (key & mask) == prefix; }
  TESSERA_HD void step(const uint32_t* hist) {
    uint32_t a = 0;
    int b = pick_count_bin(hist, rank - above, &a);
    if (b < 0) {
      found = false;
      b = 0;
    }
    above += a;
    tie_count = hist[b];
    prefix |= static_cast<uint32_t>(b) << shift();
    mask |= 0xffu << shift();
    ++pass;
  }
  // 1-based rank of the selected element among the ties of its key (ascending ids).
  TESSERA_HD uint32_t tie_rank() const { return rank - above; }
};

struct MassSelect {     // the first element whose cumulative weight crosses `target`
  double target = 0.0;  // set by the first step: scale * (total weight considered)
  double scale = 1.0;   // top_p, or the draw's u
  double total = 0.0;
  bool strict = false;  // crossing: > target (draw) or >= target (top_p)
  uint32_t prefix = 0, mask = 0;
  double before = 0.0;  // weight of considered elements with a larger key
  uint32_t tie_count = 0;
  int pass = 0;
  bool crossed = true;  // false: no element crosses (the last positive-weight one is selected)
  bool any = true;      // false: nothing of positive weight was considered

  TESSERA_HD int shift() const { return 24 - 8 * pass; }
  TESSERA_HD bool matches(uint32_t key) const { return (key & mask) == prefix; }
  TESSERA_HD void step(const double* mass, const uint32_t* hist) {
    if (pass == 0) {  // the first pass sees every considered element: the total, descending
      total = 0.0;
      for (int b = kRadixBins - 1; b >= 0; --b) total = dadd(total, mass[b]);
      target = dmul(scale, total);
    }
    double b4 = before;
    bool c = true;
    int b = pick_mass_bin(mass, before, target, strict, &b4, &c);
    if (b < 0) {
      any = false;
      b = 0;
    }
    crossed = crossed && c;
    before = b4;
    tie_count = hist[b];
    prefix |= static_cast<uint32_t>(b) << shift();
    mask |= 0xffu << shift();
    ++pass;
  }
  // 0-based index of the selected element among the ties of its key, each of weight w.
  TESSERA_HD uint32_t tie_index(double w) const {
    return pick_tie_index(before, w, tie_count, target, strict);
  }
};

}  // namespace tessera::kernels::sampling
