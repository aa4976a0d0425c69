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
  const bool latent = config.is_deepseek() && config.kv_lora_rank > 0;
  if (config.num_hidden_layers <= 0 || config.num_key_value_heads <= 0 || config.head_dim <= 0) {
    return invalid_argument("paged KV cache: bad geometry ({} layers, {} kv heads, head_dim {})",
                            config.num_hidden_layers, config.num_key_value_heads, config.head_dim);
  }
  PagedKvCache c;
  c.num_blocks_ = num_blocks;
  c.block_size_ = block_size;
  c.num_kv_heads_ = latent ? 1 : config.num_key_value_heads;
  c.head_dim_ = latent ? config.kv_lora_rank + config.qk_rope_head_dim : config.head_dim;
  c.latent_dim_ = latent ? config.kv_lora_rank : 0;
  c.dtype_ = dtype;
  for (int64_t i = 0; i < config.num_hidden_layers; ++i) {
    c.k_.emplace_back(dtype, std::initializer_list<int64_t>{num_blocks, block_size, c.num_kv_heads_,
                                                            c.head_dim_});
    if (latent) continue;  // MLA: V is a view into K (see v())
    c.v_.emplace_back(dtype, std::initializer_list<int64_t>{num_blocks, block_size, c.num_kv_heads_,
                                                            c.head_dim_});
  }
  return c;
}

Tensor PagedKvCache::v(int layer) {
  if (latent_dim_ == 0) return v_[layer].view();
  const Tensor& k = k_[layer].view();
  return Tensor(k.data(), dtype_, {num_blocks_, block_size_, num_kv_heads_, latent_dim_})
      .with_strides({k.stride_bytes(0), k.stride_bytes(1), k.stride_bytes(2), k.stride_bytes(3)});
}

void PagedKvCache::copy_block(int32_t src, int32_t dst) {
  TESSERA_CHECK(src >= 0 && src < num_blocks_ && dst >= 0 && dst < num_blocks_,
                "copy_block {} -> {} outside [0, {})", src, dst, num_blocks_);
  if (src == dst) return;
  // NOTE: host memory only for now; a device cache will need a backend copy op here.
  auto copy = [src, dst](OwnedTensor& t) {
    const Tensor& view = t.view();
    const int64_t block_bytes = view.stride_bytes(0);
    char* base = static_cast<char*>(view.data());
    std::memcpy(base + dst * block_bytes, base + src * block_bytes, block_bytes);
  };
  for (OwnedTensor& t : k_) copy(t);
  for (OwnedTensor& t : v_) copy(t);  // empty for a latent (MLA) cache
}

}  // namespace tessera::model
