// PagedKvCache allocation and block copies (see paged_kv_cache.h).
// Invariant: a block is a contiguous [block_size, Hkv, D] slab of each layer's K and V tensor.
#include "tessera/model/paged_kv_cache.h"

#include <initializer_list>
#include <utility>

#include "tessera/core/check.h"

namespace tessera::model {

Result<PagedKvCache> PagedKvCache::create(backend::Backend* backend, const ModelConfig& config,
                                          int32_t num_blocks, int32_t block_size, DType dtype) {
  if (backend == nullptr) return invalid_argument("paged KV cache needs a backend");
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
  c.backend_ = backend;
  for (int64_t i = 0; i < config.num_hidden_layers; ++i) {
    TESSERA_ASSIGN_OR_RETURN(
        backend::BackendTensor k,
        backend->allocate(dtype, {num_blocks, block_size, c.num_kv_heads_, c.head_dim_}));
    c.k_.push_back(std::move(k));
    if (latent) continue;  // MLA: V is a view into K (see v())
    TESSERA_ASSIGN_OR_RETURN(
        backend::BackendTensor v,
        backend->allocate(dtype, {num_blocks, block_size, c.num_kv_heads_, c.head_dim_}));
    c.v_.push_back(std::move(v));
  }
  return c;
}

Tensor PagedKvCache::v(int layer) {
  if (latent_dim_ == 0) return v_[layer].view;
  const Tensor& k = k_[layer].view;
  return Tensor(k.data(), dtype_, {num_blocks_, block_size_, num_kv_heads_, latent_dim_})
      .with_strides({k.stride_bytes(0), k.stride_bytes(1), k.stride_bytes(2), k.stride_bytes(3)});
}

Status PagedKvCache::copy_block(int32_t src, int32_t dst) {
  TESSERA_CHECK(src >= 0 && src < num_blocks_ && dst >= 0 && dst < num_blocks_,
                "copy_block {} -> {} outside [0, {})", src, dst, num_blocks_);
  if (src == dst) return {};
  for (std::vector<backend::BackendTensor>* tensors : {&k_, &v_}) {  // v_ empty for MLA
    for (backend::BackendTensor& t : *tensors) {
      TESSERA_RETURN_IF_ERROR(backend_->copy(t.view.row(src), t.view.row(dst)));
    }
  }
  return {};
}

}  // namespace tessera::model
