// Content hash of one full KV block for the prefix cache: a 64-bit chain hash over the parent
// block's hash, an optional cache salt and the block's token ids. Invariant: equal inputs give
// equal hashes on every platform (no pointer or std::hash input); a collision is still possible,
// so callers compare the token ids too.
#pragma once

#include <cstdint>
#include <span>

namespace tessera::kv {

using TokenId = int32_t;

// Parent hash of a sequence's first block.
inline constexpr uint64_t kRootBlockHash = 0x7e55e7a0b10c4a5dull;

// Chain hash of a block whose tokens are `tokens`, following a block with hash `parent_hash`.
uint64_t hash_block(uint64_t parent_hash, uint64_t salt, std::span<const TokenId> tokens);

}  // namespace tessera::kv
