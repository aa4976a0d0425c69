// Tensor: a non-owning, strided view (up to 4 dims) over memory owned elsewhere — a Buffer,
// an mmap'd model file, or a workspace. Buffer / OwnedTensor own aligned host memory.
// Invariant: shape[0] is the outermost dim; strides are in bytes; for block-quantized dtypes
// the innermost dim is contiguous and a multiple of the block size.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>

#include "tessera/core/check.h"
#include "tessera/core/dtype.h"

namespace tessera {

inline constexpr int kMaxDims = 4;

class Tensor {
 public:
  Tensor() = default;
  // Contiguous view of `data` with the given shape.
  Tensor(void* data, DType dtype, std::initializer_list<int64_t> shape);
  Tensor(void* data, DType dtype, const int64_t* shape, int ndim);

  void* data() const { return data_; }
  template <typename T>
  T* data_as() const {
    return static_cast<T*>(data_);
  }
  DType dtype() const { return dtype_; }
  int ndim() const { return ndim_; }
  int64_t dim(int i) const;  // negative i counts from the end
  int64_t stride_bytes(int i) const;
  const std::array<int64_t, kMaxDims>& shape() const { return shape_; }
  int64_t numel() const;
  int64_t nbytes() const;  // bytes spanned if contiguous
  bool is_contiguous() const;
  bool empty() const { return data_ == nullptr; }

  // Views (no copies).
  Tensor row(int64_t i) const;                       // drop dim 0
  Tensor slice_rows(int64_t begin, int64_t end) const;  // dim 0 range
  Tensor reshape(std::initializer_list<int64_t> shape) const;  // contiguous only
  Tensor with_strides(std::initializer_list<int64_t> stride_bytes) const;

  std::string describe() const;  // "f32[4, 576]"

 private:
  void* data_ = nullptr;
  DType dtype_ = DType::kF32;
  int ndim_ = 0;
  std::array<int64_t, kMaxDims> shape_{};
  std::array<int64_t, kMaxDims> stride_bytes_{};
};

// 64-byte aligned host allocation.
class Buffer {
 public:
  Buffer() = default;
  explicit Buffer(size_t nbytes);
  void* data() const { return data_.get(); }
  size_t size() const { return size_; }

 private:
  struct Free {
    void operator()(void* p) const;
  };
  std::unique_ptr<void, Free> data_;
  size_t size_ = 0;
};

// A tensor with its own Buffer.
class OwnedTensor {
 public:
  OwnedTensor() = default;
  OwnedTensor(DType dtype, std::initializer_list<int64_t> shape);
  const Tensor& view() const { return view_; }
  Tensor& view() { return view_; }
  template <typename T>
  T* data_as() const {
    return view_.data_as<T>();
  }

 private:
  Buffer buffer_;
  Tensor view_;
};

}  // namespace tessera
