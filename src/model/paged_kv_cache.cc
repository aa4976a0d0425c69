// PagedKvCache allocation and block copies (see paged_kv_cache.h).
// Invariant: a block is a contiguous [block_size, Hkv, D] slab of each layer's K and V tensor.
#include "tessera/model/paged_kv_cache.h"

#include <cstring>

#include "tessera/core/check.h"

namespace tessera::model {

Result<PagedKvCache> PagedKvCache::create(const ModelConfig& config, int32_t num_blocks,
                                          int32_t block_size, DType dtype) {
  if (num_blocks <= 0 || block_size <= 0) {
    return invalid_argument("paged KV cache needs positive num_blocks and block_size, got {} x {}",
                            num_blocks, block_size);
  }
  if (dtype != DType::kF32 && dtype != DType::kF16) {
    return invalid_argument("paged KV cache dtype must be f32 or f16, not {}", dtype_name(dtype));
  }
  if (config.num_hidden_layers <= 0 || config.num_key_value_heads <= 0 || config.head_dim <= 0) {
    return invalid_argument("paged KV cache: bad geometry ({} layers, {} kv heads, head_dim {})",
                            config.num_hidden_layers, config.num_key_value_heads, config.head_dim);
  }
  PagedKvCache c;
  c.num_blocks_ = num_blocks;
  c.block_size_ = block_size;
  c.num_kv_heads_ = config.num_key_value_heads;
  c.head_dim_ = config.head_dim;
  c.dtype_ = dtype;
  for (int64_t i = 0; i < config.num_hidden_layers; ++i) {
    c.k_.emplace_back(dtype, std::initializer_list<int64_t>{num_blocks, block_size, c.num_kv_heads_,
                                                            c.head_dim_});
    c.v_.emplace_back(dtype, std::initializer_list<int64_t>{num_blocks, block_size, c.num_kv_heads_,
                                                            c.head_dim_});
  }
  return c;
}

void PagedKvCache::copy_block(int32_t src, int32_t dst) {
  TESSERA_CHECK(src >= 0 && src < num_blocks_ && dst >= 0 && dst < num_blocks_,
                "copy_block {} -> {} outside [0, {})", src, dst, num_blocks_);
  if (src == dst) return;
  // NOTE: host memory only for now; a device cache will need a backend copy op here.
  for (size_t l = 0; l < k_.size(); ++l) {
    for (OwnedTensor* t : {&k_[l], &v_[l]}) {
      const Tensor& view = t->view();
      const int64_t block_bytes = view.stride_bytes(0);
      char* base = static_cast<char*>(view.data());
      std::memcpy(base + dst * block_bytes, base + src * block_bytes, block_bytes);
    }
  }
}

}  // namespace tessera::model
