// Tensor views and aligned host buffers.
#include "tessera/core/tensor.h"

#include <fmt/format.h>

#include <cstdlib>
#include <new>

namespace tessera {
namespace {
void fill_contiguous_strides(DType dtype, int ndim, const std::array<int64_t, kMaxDims>& shape,
                             std::array<int64_t, kMaxDims>* strides) {
  if (ndim == 0) return;
  (*strides)[ndim - 1] = dtype_info(dtype).block_bytes;  // per block for quantized types
  if (ndim >= 2) (*strides)[ndim - 2] = dtype_row_bytes(dtype, shape[ndim - 1]);
  for (int i = ndim - 3; i >= 0; --i) (*strides)[i] = (*strides)[i + 1] * shape[i + 1];
}
}  // namespace

Tensor::Tensor(void* data, DType dtype, std::initializer_list<int64_t> shape)
    : Tensor(data, dtype, shape.begin(), static_cast<int>(shape.size())) {}

Tensor::Tensor(void* data, DType dtype, const int64_t* shape, int ndim)
    : data_(data), dtype_(dtype), ndim_(ndim) {
  TESSERA_CHECK(ndim >= 1 && ndim <= kMaxDims, "ndim {} out of range", ndim);
  for (int i = 0; i < ndim; ++i) {
    TESSERA_CHECK(shape[i] >= 0, "negative dim {}", shape[i]);
    shape_[i] = shape[i];
  }
  fill_contiguous_strides(dtype, ndim, shape_, &stride_bytes_);
}

int64_t Tensor::dim(int i) const {
  if (i < 0) i += ndim_;
  TESSERA_CHECK(i >= 0 && i < ndim_, "dim {} of {}", i, describe());
  return shape_[i];
}

int64_t Tensor::stride_bytes(int i) const {
  if (i < 0) i += ndim_;
  TESSERA_CHECK(i >= 0 && i < ndim_, "dim {} of {}", i, describe());
  return stride_bytes_[i];
}

int64_t Tensor::numel() const {
  if (ndim_ == 0) return 0;
  int64_t n = 1;
  for (int i = 0; i < ndim_; ++i) n *= shape_[i];
  return n;
}

int64_t Tensor::nbytes() const {
  if (ndim_ == 0) return 0;
  return dtype_row_bytes(dtype_, numel());
}

bool Tensor::is_contiguous() const {
  std::array<int64_t, kMaxDims> expected{};
  fill_contiguous_strides(dtype_, ndim_, shape_, &expected);
  for (int i = 0; i < ndim_; ++i) {
    if (shape_[i] > 1 && expected[i] != stride_bytes_[i]) return false;
  }
  return true;
}

Tensor Tensor::row(int64_t i) const {
  TESSERA_CHECK(ndim_ >= 2 && i >= 0 && i < shape_[0], "row {} of {}", i, describe());
  Tensor t = *this;
  t.data_ = static_cast<char*>(data_) + i * stride_bytes_[0];
  t.ndim_ = ndim_ - 1;
  for (int d = 0; d < t.ndim_; ++d) {
    t.shape_[d] = shape_[d + 1];
    t.stride_bytes_[d] = stride_bytes_[d + 1];
  }
  t.shape_[t.ndim_] = 0;
  t.stride_bytes_[t.ndim_] = 0;
  return t;
}

Tensor Tensor::slice_rows(int64_t begin, int64_t end) const {
  TESSERA_CHECK(ndim_ >= 1 && begin >= 0 && begin <= end && end <= shape_[0],
                "rows [{}, {}) of {}", begin, end, describe());
  Tensor t = *this;
  t.data_ = static_cast<char*>(data_) + begin * stride_bytes_[0];
  t.shape_[0] = end - begin;
  return t;
}

Tensor Tensor::reshape(std::initializer_list<int64_t> shape) const {
  TESSERA_CHECK(is_contiguous(), "reshape of non-contiguous {}", describe());
  Tensor t(data_, dtype_, shape);
  TESSERA_CHECK(t.numel() == numel(), "reshape {} to {} values", describe(), t.numel());
  return t;
}

Tensor Tensor::with_strides(std::initializer_list<int64_t> stride_bytes) const {
  TESSERA_CHECK(static_cast<int>(stride_bytes.size()) == ndim_, "stride count for {}", describe());
  Tensor t = *this;
  int i = 0;
  for (int64_t s : stride_bytes) t.stride_bytes_[i++] = s;
  return t;
}

std::string Tensor::describe() const {
  std::string s = fmt::format("{}[", dtype_name(dtype_));
  for (int i = 0; i < ndim_; ++i) s += fmt::format("{}{}", i ? ", " : "", shape_[i]);
  return s + "]";
}

void Buffer::Free::operator()(void* p) const { std::free(p); }

Buffer::Buffer(size_t nbytes) : size_(nbytes) {
  const size_t rounded = (nbytes + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, rounded == 0 ? 64 : rounded);
  if (p == nullptr) throw std::bad_alloc();
  data_.reset(p);
}

OwnedTensor::OwnedTensor(DType dtype, std::initializer_list<int64_t> shape) {
  Tensor probe(nullptr, dtype, shape);
  buffer_ = Buffer(static_cast<size_t>(probe.nbytes()));
  view_ = Tensor(buffer_.data(), dtype, shape);
}

}  // namespace tessera
