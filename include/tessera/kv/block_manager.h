// BlockManager: pure bookkeeping of a paged KV cache (no tensors, devices or streams). Each
// sequence owns a block table of `block_size`-token blocks; full blocks are content-addressed
// for prefix caching; a forked sequence shares blocks copy-on-write. Invariant: every block is
// either free (in exactly one free list) or referenced, and its ref count equals the number of
// block tables that hold it. Callers see block ids and counts, never the structure.
#pragma once

#include <cstdint>
#include <span>
#include <unordered_map>
#include <vector>

#include "tessera/kv/block_hash.h"

namespace tessera::kv {

using BlockId = int32_t;
using SeqId = int64_t;

struct BlockManagerConfig {
  int32_t num_blocks = 0;
  int32_t block_size = 16;  // tokens per block
  bool enable_prefix_caching = true;
  // NOTE: tests weaken the block hash with this mask to force collisions; a match is still
  // decided exactly, by the parent block's identity and the token ids.
  uint64_t hash_mask_for_testing = ~0ull;
};

// A block the caller must copy (all layers' K and V) before running the step: copy-on-write
// of a shared partial block.
struct BlockCopy {
  BlockId src = 0;
  BlockId dst = 0;
};

struct PrefixCacheStats {
  int64_t num_queries = 0;       // sequences admitted through add_sequence
  int64_t num_query_tokens = 0;  // their prompt tokens
  int64_t num_hits = 0;          // admissions that reused at least one block
  int64_t num_hit_tokens = 0;    // tokens not recomputed thanks to the cache
  int64_t num_evictions = 0;     // cached free blocks reused for other content
};

class BlockManager {
 public:
  explicit BlockManager(const BlockManagerConfig& config);

  int32_t block_size() const { return config_.block_size; }
  int32_t num_blocks() const { return config_.num_blocks; }
  // Blocks an allocation can take now (uncached free blocks plus evictable cached ones).
  int32_t num_free_blocks() const;
  // Blocks needed to hold `num_tokens` tokens.
  int32_t blocks_for(int64_t num_tokens) const;

  // Prefix-cache lookup: how many leading tokens of `tokens` have their KV cached, in whole
  // blocks, always leaving at least the last token to compute. Takes no references; the answer
  // holds until the next call that allocates or frees.
  int32_t lookup_prefix(std::span<const TokenId> tokens, uint64_t salt) const;

  // Admits `seq` (unknown to the manager): shares the blocks of its first `num_cached_tokens`
  // tokens (a lookup_prefix result, or 0) and reserves slots for `num_new_tokens` more.
  // `tokens` are the sequence's known tokens (at least num_cached + num_new). Returns false and
  // changes nothing when the pool is too small. Records one prefix-cache query.
  bool add_sequence(SeqId seq, std::span<const TokenId> tokens, int32_t num_cached_tokens,
                    int32_t num_new_tokens, uint64_t salt);

  // Grows `seq` by `num_new_tokens` slots (copy-on-write of a shared last block included).
  // `tokens` covers the grown length; blocks it fills are registered in the prefix cache, so
  // the caller must compute the step it schedules. Returns false and changes nothing when full.
  bool allocate_slots(SeqId seq, std::span<const TokenId> tokens, int32_t num_new_tokens);

  // `child` shares all of `parent`'s blocks (n > 1 sampling); writes diverge copy-on-write.
  void fork(SeqId parent, SeqId child);

  // Releases `seq`'s blocks; cached ones stay reusable until evicted (LRU, tail blocks first).
  void free(SeqId seq);

  bool has_sequence(SeqId seq) const { return seqs_.count(seq) != 0; }
  std::span<const BlockId> block_table(SeqId seq) const;
  int32_t num_slots(SeqId seq) const;  // tokens the sequence's blocks hold

  // Copies owed since the last call (see BlockCopy); the caller runs them before the step.
  std::vector<BlockCopy> take_block_copies();

  const PrefixCacheStats& prefix_cache_stats() const { return stats_; }

  // For tests: aborts (TESSERA_CHECK) on any broken invariant: leaked or double-owned blocks,
  // wrong ref counts, free lists or cache index out of step.
  void check_invariants() const;
  int32_t ref_count(BlockId block) const { return blocks_[block].ref_count; }
  bool is_cached(BlockId block) const { return blocks_[block].cached; }

 private:
  // A cached block's parent: its id and the generation it was registered with (a parent that
  // was evicted and reused has a new generation, which makes its old children unreachable).
  struct Link {
    BlockId block = -1;  // -1: the root (no parent)
    uint64_t generation = 0;
    bool valid = true;  // false: the parent is no longer cached, so nothing chains from here
  };
  struct Block {
    int32_t ref_count = 0;
    bool cached = false;  // registered in the prefix-cache index
    uint64_t hash = 0;    // chain hash (valid when cached)
    uint64_t generation = 0;
    Link parent;
    uint64_t salt = 0;
    std::vector<TokenId> tokens;  // [block_size] when cached: compared on lookup
    int32_t lru_prev = -1;        // free-cached LRU list links (-1: none)
    int32_t lru_next = -1;
    bool in_lru = false;
  };
  struct SeqState {
    std::vector<BlockId> blocks;
    std::vector<uint64_t> block_hashes;  // chain hashes of the full blocks registered so far
    std::vector<Link> links;             // per full block: the cached block holding its content
    int32_t num_slots = 0;
    uint64_t salt = 0;
  };

  uint64_t chain_hash(uint64_t parent_hash, uint64_t salt, std::span<const TokenId> tokens) const;
  BlockId find_cached(uint64_t hash, const Link& parent, uint64_t salt,
                      std::span<const TokenId> tokens) const;
  Link link_to(BlockId block) const { return {block, blocks_[block].generation, true}; }
  bool is_current(const Link& link) const;
  void register_full_blocks(SeqState& state, std::span<const TokenId> tokens);
  BlockId take_free_block();
  void touch(BlockId block);  // takes a reference, removing a free cached block from the LRU
  void release(BlockId block);
  void lru_push_back(BlockId block);
  void lru_remove(BlockId block);
  void evict(BlockId block);
  bool needs_copy_on_write(const SeqState& state, int32_t num_new_tokens) const;

  BlockManagerConfig config_;
  std::vector<Block> blocks_;
  std::vector<BlockId> free_uncached_;  // stack: reused before any cached block is evicted
  int32_t lru_head_ = -1;               // least recently freed cached block
  int32_t lru_tail_ = -1;
  int32_t num_lru_ = 0;
  std::unordered_map<uint64_t, std::vector<BlockId>> cache_index_;  // hash -> cached blocks
  uint64_t next_generation_ = 0;
  std::unordered_map<SeqId, SeqState> seqs_;
  std::vector<BlockCopy> pending_copies_;
  PrefixCacheStats stats_;
};

}  // namespace tessera::kv
