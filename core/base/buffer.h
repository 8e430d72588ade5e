// Buffer: a chain of heap blocks holding bytes that could not be passed on yet (a write the
// socket did not take, bytes held while a parser is paused). Appends copy; drains free whole
// blocks from the front and keep a few spare blocks for reuse, so a steady stream does not
// malloc per read. Single-owner, not thread-safe.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace meshbox {

class Buffer {
 public:
  static constexpr size_t kBlockSize = 16 * 1024;

  Buffer() = default;
  Buffer(Buffer&& other) noexcept { *this = std::move(other); }
  Buffer& operator=(Buffer&& other) noexcept {
    blocks_ = std::move(other.blocks_);
    spares_ = std::move(other.spares_);
    other.spares_.clear();
    front_ = std::exchange(other.front_, 0);
    size_ = std::exchange(other.size_, 0);
    other.blocks_.clear();
    return *this;
  }

  void append(const char* data, size_t len);
  void append(std::string_view s) { append(s.data(), s.size()); }
  /// Moves every byte of `other` to the end of this buffer (blocks move, no copy).
  void append(Buffer&& other);

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

  /// Removes `len` bytes from the front (len <= size()).
  void drain(size_t len);
  void clear();

  /// Fills up to `max` iovecs with the front of the buffer; returns how many were filled.
  size_t peek(struct iovec* out, size_t max) const;
  /// Copies the first `len` bytes out (len <= size()).
  void copy_out(char* dst, size_t len) const;
  std::string to_string() const;

 private:
  struct Block {
    std::unique_ptr<char[]> data;
    size_t cap = 0, begin = 0, end = 0;
    size_t readable() const { return end - begin; }
    size_t writable() const { return cap - end; }
  };
  // A vector with a moving front, not a deque: an empty Buffer (most connections, most of the
  // time) owns no memory at all, where libstdc++'s deque allocates 512 bytes up front.
  std::vector<Block> blocks_;
  size_t front_ = 0;  // blocks_[front_] is the first live block
  // Drained blocks kept for the next appends: a stream whose output backs up cycles through a
  // few blocks instead of allocating and freeing one per socket read.
  static constexpr size_t kMaxSpares = 4;
  std::vector<Block> spares_;
  size_t size_ = 0;
};

}  // namespace meshbox
