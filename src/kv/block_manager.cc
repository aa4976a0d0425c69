// BlockManager implementation: a stack of uncached free blocks, an intrusive LRU list of free
// blocks that still hold cached content, and a hash index over cached blocks. Invariant: an
// allocation takes an uncached block first and evicts the least recently freed cached block
// only when none is left; a failed allocation changes nothing.
#include "tessera/kv/block_manager.h"

#include <algorithm>

#include "tessera/core/check.h"

namespace tessera::kv {

BlockManager::BlockManager(const BlockManagerConfig& config) : config_(config) {
  TESSERA_CHECK(config.num_blocks > 0, "num_blocks must be positive, got {}", config.num_blocks);
  TESSERA_CHECK(config.block_size > 0, "block_size must be positive, got {}", config.block_size);
  blocks_.resize(config.num_blocks);
  free_uncached_.reserve(config.num_blocks);
  // Lowest ids on top of the stack, so a fresh manager hands out 0, 1, 2...
  for (BlockId b = config.num_blocks - 1; b >= 0; --b) free_uncached_.push_back(b);
}

int32_t BlockManager::num_free_blocks() const {
  return static_cast<int32_t>(free_uncached_.size()) + num_lru_;
}

int32_t BlockManager::blocks_for(int64_t num_tokens) const {
  return static_cast<int32_t>((num_tokens + config_.block_size - 1) / config_.block_size);
}

int32_t BlockManager::lookup_prefix(std::span<const TokenId> tokens, uint64_t salt) const {
  if (!config_.enable_prefix_caching || tokens.empty()) return 0;
  const int32_t bs = config_.block_size;
  const int32_t max_blocks = static_cast<int32_t>((tokens.size() - 1) / bs);
  uint64_t parent_hash = kRootBlockHash;
  Link parent;
  int32_t num_hit_blocks = 0;
  for (; num_hit_blocks < max_blocks; ++num_hit_blocks) {
    const auto block_tokens = tokens.subspan(static_cast<size_t>(num_hit_blocks) * bs, bs);
    const uint64_t hash = chain_hash(parent_hash, salt, block_tokens);
    const BlockId block = find_cached(hash, parent, salt, block_tokens);
    if (block < 0) break;
    parent = link_to(block);
    parent_hash = hash;
  }
  return num_hit_blocks * bs;
}

bool BlockManager::add_sequence(SeqId seq, std::span<const TokenId> tokens,
                                int32_t num_cached_tokens, int32_t num_new_tokens, uint64_t salt) {
  const int32_t bs = config_.block_size;
  TESSERA_CHECK(!has_sequence(seq), "sequence {} already has blocks", seq);
  TESSERA_CHECK(num_cached_tokens >= 0 && num_cached_tokens % bs == 0 && num_new_tokens >= 0,
                "bad counts: cached {} new {}", num_cached_tokens, num_new_tokens);
  TESSERA_CHECK(tokens.size() >= static_cast<size_t>(num_cached_tokens + num_new_tokens),
                "{} tokens known, {} requested", tokens.size(), num_cached_tokens + num_new_tokens);
  SeqState state;
  state.salt = salt;
  uint64_t parent_hash = kRootBlockHash;
  Link parent;
  int32_t num_free_hits = 0;
  for (int32_t i = 0; i < num_cached_tokens / bs; ++i) {
    const auto block_tokens = tokens.subspan(static_cast<size_t>(i) * bs, bs);
    const uint64_t hash = chain_hash(parent_hash, salt, block_tokens);
    const BlockId block = find_cached(hash, parent, salt, block_tokens);
    TESSERA_CHECK(block >= 0, "stale lookup_prefix result for sequence {} (block {})", seq, i);
    if (blocks_[block].ref_count == 0) ++num_free_hits;
    state.blocks.push_back(block);
    state.block_hashes.push_back(hash);
    parent = link_to(block);
    state.links.push_back(parent);
    parent_hash = hash;
  }
  const int32_t num_needed =
      blocks_for(num_cached_tokens + num_new_tokens) - static_cast<int32_t>(state.blocks.size());
  if (num_needed > num_free_blocks() - num_free_hits) return false;

  for (BlockId block : state.blocks) touch(block);
  for (int32_t i = 0; i < num_needed; ++i) state.blocks.push_back(take_free_block());
  state.num_slots = num_cached_tokens + num_new_tokens;
  register_full_blocks(state, tokens);
  seqs_.emplace(seq, std::move(state));

  ++stats_.num_queries;
  stats_.num_query_tokens += static_cast<int64_t>(tokens.size());
  if (num_cached_tokens > 0) ++stats_.num_hits;
  stats_.num_hit_tokens += num_cached_tokens;
  return true;
}

bool BlockManager::needs_copy_on_write(const SeqState& state, int32_t num_new_tokens) const {
  return num_new_tokens > 0 && state.num_slots % config_.block_size != 0 &&
         blocks_[state.blocks.back()].ref_count > 1;
}

bool BlockManager::allocate_slots(SeqId seq, std::span<const TokenId> tokens,
                                  int32_t num_new_tokens) {
  auto it = seqs_.find(seq);
  TESSERA_CHECK(it != seqs_.end(), "allocate_slots for unknown sequence {}", seq);
  TESSERA_CHECK(num_new_tokens >= 0, "num_new_tokens {}", num_new_tokens);
  SeqState& state = it->second;
  const int32_t new_slots = state.num_slots + num_new_tokens;
  TESSERA_CHECK(tokens.size() >= static_cast<size_t>(new_slots), "{} tokens known, {} slots",
                tokens.size(), new_slots);
  const bool copy_on_write = needs_copy_on_write(state, num_new_tokens);
  const int32_t num_needed =
      blocks_for(new_slots) - static_cast<int32_t>(state.blocks.size()) + (copy_on_write ? 1 : 0);
  if (num_needed > num_free_blocks()) return false;

  if (copy_on_write) {
    const BlockId src = state.blocks.back();
    const BlockId dst = take_free_block();
    release(src);  // still referenced by the sequences it was shared with
    state.blocks.back() = dst;
    pending_copies_.push_back({src, dst});
  }
  while (static_cast<int32_t>(state.blocks.size()) < blocks_for(new_slots)) {
    state.blocks.push_back(take_free_block());
  }
  state.num_slots = new_slots;
  register_full_blocks(state, tokens);
  return true;
}

void BlockManager::fork(SeqId parent, SeqId child) {
  TESSERA_CHECK(!has_sequence(child), "fork target {} already has blocks", child);
  auto it = seqs_.find(parent);
  TESSERA_CHECK(it != seqs_.end(), "fork of unknown sequence {}", parent);
  SeqState state = it->second;
  for (BlockId block : state.blocks) touch(block);
  seqs_.emplace(child, std::move(state));
}

void BlockManager::free(SeqId seq) {
  auto it = seqs_.find(seq);
  if (it == seqs_.end()) return;
  const std::vector<BlockId>& blocks = it->second.blocks;
  // A copy into a block this sequence alone owned is moot now.
  std::erase_if(pending_copies_, [&](const BlockCopy& c) {
    return std::find(blocks.begin(), blocks.end(), c.dst) != blocks.end();
  });
  // Tail first: the LRU then evicts a sequence's last blocks before its shared prefix.
  for (auto b = blocks.rbegin(); b != blocks.rend(); ++b) release(*b);
  seqs_.erase(it);
}

std::span<const BlockId> BlockManager::block_table(SeqId seq) const {
  auto it = seqs_.find(seq);
  TESSERA_CHECK(it != seqs_.end(), "block_table of unknown sequence {}", seq);
  return it->second.blocks;
}

int32_t BlockManager::num_slots(SeqId seq) const {
  auto it = seqs_.find(seq);
  return it == seqs_.end() ? 0 : it->second.num_slots;
}

std::vector<BlockCopy> BlockManager::take_block_copies() {
  std::vector<BlockCopy> copies;
  copies.swap(pending_copies_);
  return copies;
}

uint64_t BlockManager::chain_hash(uint64_t parent_hash, uint64_t salt,
                                  std::span<const TokenId> tokens) const {
  return hash_block(parent_hash, salt, tokens) & config_.hash_mask_for_testing;
}

bool BlockManager::is_current(const Link& link) const {
  if (!link.valid) return false;
  if (link.block < 0) return true;  // the root
  const Block& b = blocks_[link.block];
  return b.cached && b.generation == link.generation;
}

// NOTE: the hash only narrows the search. A match needs the same parent block (by identity,
// so a parent-hash collision cannot chain onto foreign content), salt and token ids.
BlockId BlockManager::find_cached(uint64_t hash, const Link& parent, uint64_t salt,
                                  std::span<const TokenId> tokens) const {
  auto it = cache_index_.find(hash);
  if (it == cache_index_.end()) return -1;
  for (BlockId b : it->second) {
    const Block& block = blocks_[b];
    if (block.parent.block == parent.block && block.parent.generation == parent.generation &&
        block.salt == salt &&
        std::equal(tokens.begin(), tokens.end(), block.tokens.begin(), block.tokens.end())) {
      return b;
    }
  }
  return -1;
}

void BlockManager::register_full_blocks(SeqState& state, std::span<const TokenId> tokens) {
  if (!config_.enable_prefix_caching) return;
  const int32_t bs = config_.block_size;
  const int32_t num_full = state.num_slots / bs;
  for (int32_t i = static_cast<int32_t>(state.block_hashes.size()); i < num_full; ++i) {
    const uint64_t parent_hash = i == 0 ? kRootBlockHash : state.block_hashes[i - 1];
    const Link parent = i == 0 ? Link{} : state.links[i - 1];
    const auto block_tokens = tokens.subspan(static_cast<size_t>(i) * bs, bs);
    const uint64_t hash = chain_hash(parent_hash, state.salt, block_tokens);
    state.block_hashes.push_back(hash);
    if (!is_current(parent)) {  // the cached copy of the previous block was evicted meanwhile
      state.links.push_back({-1, 0, false});
      continue;
    }
    // A duplicate of content already cached stays unregistered; it is freed as plain space.
    const BlockId existing = find_cached(hash, parent, state.salt, block_tokens);
    if (existing >= 0) {
      state.links.push_back(link_to(existing));
      continue;
    }
    const BlockId id = state.blocks[i];
    Block& block = blocks_[id];
    TESSERA_CHECK(!block.cached, "block {} is cached under other content", id);
    block.cached = true;
    block.hash = hash;
    block.generation = ++next_generation_;
    block.parent = parent;
    block.salt = state.salt;
    block.tokens.assign(block_tokens.begin(), block_tokens.end());
    cache_index_[hash].push_back(id);
    state.links.push_back(link_to(id));
  }
}

BlockId BlockManager::take_free_block() {
  BlockId b;
  if (!free_uncached_.empty()) {
    b = free_uncached_.back();
    free_uncached_.pop_back();
  } else {
    TESSERA_CHECK(lru_head_ >= 0, "no free block (callers check num_free_blocks first)");
    b = lru_head_;
    lru_remove(b);
    evict(b);
    ++stats_.num_evictions;
  }
  TESSERA_CHECK_EQ(blocks_[b].ref_count, 0);
  blocks_[b].ref_count = 1;
  return b;
}

void BlockManager::touch(BlockId block) {
  if (blocks_[block].ref_count == 0) lru_remove(block);
  ++blocks_[block].ref_count;
}

void BlockManager::release(BlockId block) {
  Block& b = blocks_[block];
  TESSERA_CHECK(b.ref_count > 0, "release of free block {}", block);
  if (--b.ref_count > 0) return;
  if (b.cached) {
    lru_push_back(block);
  } else {
    free_uncached_.push_back(block);
  }
}

void BlockManager::lru_push_back(BlockId block) {
  Block& b = blocks_[block];
  b.lru_prev = lru_tail_;
  b.lru_next = -1;
  if (lru_tail_ >= 0) {
    blocks_[lru_tail_].lru_next = block;
  } else {
    lru_head_ = block;
  }
  lru_tail_ = block;
  b.in_lru = true;
  ++num_lru_;
}

void BlockManager::lru_remove(BlockId block) {
  Block& b = blocks_[block];
  TESSERA_CHECK(b.in_lru, "block {} is not in the LRU list", block);
  if (b.lru_prev >= 0) {
    blocks_[b.lru_prev].lru_next = b.lru_next;
  } else {
    lru_head_ = b.lru_next;
  }
  if (b.lru_next >= 0) {
    blocks_[b.lru_next].lru_prev = b.lru_prev;
  } else {
    lru_tail_ = b.lru_prev;
  }
  b.lru_prev = b.lru_next = -1;
  b.in_lru = false;
  --num_lru_;
}

void BlockManager::evict(BlockId block) {
  Block& b = blocks_[block];
  auto it = cache_index_.find(b.hash);
  TESSERA_CHECK(it != cache_index_.end(), "cached block {} missing from the index", block);
  std::erase(it->second, block);
  if (it->second.empty()) cache_index_.erase(it);
  b.cached = false;
  b.tokens.clear();
}

void BlockManager::check_invariants() const {
  const int32_t n = config_.num_blocks;
  std::vector<int32_t> owners(n, 0);
  for (const auto& [seq, state] : seqs_) {
    TESSERA_CHECK_EQ(static_cast<int32_t>(state.blocks.size()), blocks_for(state.num_slots));
    if (config_.enable_prefix_caching) {
      TESSERA_CHECK_EQ(static_cast<int32_t>(state.block_hashes.size()),
                       state.num_slots / config_.block_size);
      TESSERA_CHECK_EQ(state.links.size(), state.block_hashes.size());
    }
    std::vector<BlockId> sorted = state.blocks;
    std::sort(sorted.begin(), sorted.end());
    TESSERA_CHECK(std::adjacent_find(sorted.begin(), sorted.end()) == sorted.end(),
                  "sequence {} holds a block twice", seq);
    for (BlockId b : state.blocks) {
      TESSERA_CHECK(b >= 0 && b < n, "block id {} out of range", b);
      ++owners[b];
    }
  }
  std::vector<int32_t> in_free(n, 0);
  for (BlockId b : free_uncached_) ++in_free[b];
  int32_t lru_count = 0;
  for (BlockId b = lru_head_, prev = -1; b >= 0; prev = b, b = blocks_[b].lru_next) {
    TESSERA_CHECK_EQ(blocks_[b].lru_prev, prev);
    TESSERA_CHECK(blocks_[b].in_lru && blocks_[b].cached, "LRU block {} not cached", b);
    ++in_free[b];
    TESSERA_CHECK_LE(++lru_count, n);
  }
  TESSERA_CHECK_EQ(lru_count, num_lru_);
  int32_t num_cached = 0;
  for (BlockId b = 0; b < n; ++b) {
    const Block& block = blocks_[b];
    TESSERA_CHECK(block.ref_count == owners[b], "block {}: ref count {} but {} owners", b,
                  block.ref_count, owners[b]);
    TESSERA_CHECK(in_free[b] == (block.ref_count == 0 ? 1 : 0),
                  "block {}: ref count {} but in {} free lists", b, block.ref_count, in_free[b]);
    TESSERA_CHECK_EQ(block.in_lru, block.ref_count == 0 && block.cached);
    if (block.cached) {
      ++num_cached;
      TESSERA_CHECK_EQ(static_cast<int32_t>(block.tokens.size()), config_.block_size);
      TESSERA_CHECK(find_cached(block.hash, block.parent, block.salt, block.tokens) == b,
                    "cached block {} not found by its own key", b);
    }
  }
  int32_t num_indexed = 0;
  for (const auto& [key, list] : cache_index_) {
    TESSERA_CHECK(!list.empty(), "empty index bucket {}", key);
    for (BlockId b : list) {
      TESSERA_CHECK(blocks_[b].cached && blocks_[b].hash == key, "index entry {}", b);
      ++num_indexed;
    }
  }
  TESSERA_CHECK_EQ(num_indexed, num_cached);
  for (const BlockCopy& c : pending_copies_) {
    TESSERA_CHECK(blocks_[c.dst].ref_count > 0, "pending copy into free block {}", c.dst);
  }
}

}  // namespace tessera::kv
