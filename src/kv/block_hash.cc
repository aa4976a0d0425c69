// Block chain hash: a multiply-rotate accumulator over 64-bit lanes with a final avalanche
// (our own construction in the style of the xxhash family). Invariant: deterministic and
// platform independent; every input bit reaches every output bit through the finaliser.
#include "tessera/kv/block_hash.h"

namespace tessera::kv {
namespace {

constexpr uint64_t kPrime1 = 0x9e3779b185ebca87ull;
constexpr uint64_t kPrime2 = 0xc2b2ae3d27d4eb4full;
constexpr uint64_t kPrime3 = 0x165667b19e3779f9ull;

constexpr uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

constexpr uint64_t mix_lane(uint64_t acc, uint64_t lane) {
  acc += lane * kPrime2;
  acc = rotl(acc, 31);
  return acc * kPrime1;
}

constexpr uint64_t avalanche(uint64_t h) {
  h ^= h >> 33;
  h *= kPrime2;
  h ^= h >> 29;
  h *= kPrime3;
  h ^= h >> 32;
  return h;
}

}  // namespace

uint64_t hash_block(uint64_t parent_hash, uint64_t salt, std::span<const TokenId> tokens) {
  uint64_t acc = kPrime3 ^ static_cast<uint64_t>(tokens.size());
  acc = mix_lane(acc, parent_hash);
  acc = mix_lane(acc, salt);
  size_t i = 0;
  // Two token ids per 64-bit lane.
  for (; i + 1 < tokens.size(); i += 2) {
    const uint64_t lane = static_cast<uint32_t>(tokens[i]) |
                          (static_cast<uint64_t>(static_cast<uint32_t>(tokens[i + 1])) << 32);
    acc = mix_lane(acc, lane);
  }
  if (i < tokens.size()) acc = mix_lane(acc, static_cast<uint32_t>(tokens[i]) ^ kPrime1);
  return avalanche(acc);
}

}  // namespace tessera::kv
