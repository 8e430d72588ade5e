#include "core/base/buffer.h"

#include <algorithm>
#include <cstring>

namespace meshbox {

void Buffer::append(const char* data, size_t len) {
  if (len == 0) return;
  size_ += len;
  if (front_ < blocks_.size()) {
    Block& last = blocks_.back();
    size_t n = std::min(len, last.writable());
    std::memcpy(last.data.get() + last.end, data, n);
    last.end += n;
    data += n;
    len -= n;
  }
  if (len == 0) return;
  Block b;
  if (!spares_.empty() && spares_.back().cap >= len) {
    b = std::move(spares_.back());
    spares_.pop_back();
    b.begin = b.end = 0;
  } else {
    // Blocks come in 16 KiB, or whole 64 KiB steps for bigger appends (a socket read is at
    // most 64 KiB), so the spare blocks kept by drain() fit the next appends of a stream.
    constexpr size_t kBig = 64 * 1024;
    b.cap = len <= kBlockSize ? kBlockSize : (len + kBig - 1) / kBig * kBig;
    b.data.reset(new char[b.cap]);
  }
  std::memcpy(b.data.get(), data, len);
  b.end = len;
  blocks_.push_back(std::move(b));
}

void Buffer::append(Buffer&& other) {
  for (size_t i = other.front_; i < other.blocks_.size(); ++i)
    blocks_.push_back(std::move(other.blocks_[i]));
  size_ += other.size_;
  other.clear();
}

void Buffer::drain(size_t len) {
  len = std::min(len, size_);
  size_ -= len;
  while (len > 0) {
    Block& front = blocks_[front_];
    size_t n = std::min(len, front.readable());
    front.begin += n;
    len -= n;
    if (front.readable() == 0) {
      if (spares_.size() < kMaxSpares) spares_.push_back(std::move(front));
      front.data.reset();
      ++front_;
    }
  }
  if (front_ == blocks_.size()) {
    blocks_.clear();  // keeps its capacity: a steady stream reuses it
    front_ = 0;
    // Caught up: one spare is enough for what comes next; an idle connection holds no more.
    if (spares_.size() > 1) spares_.resize(1);
  } else if (front_ >= 8 && front_ * 2 >= blocks_.size()) {
    blocks_.erase(blocks_.begin(), blocks_.begin() + static_cast<std::ptrdiff_t>(front_));
    front_ = 0;
  }
}

void Buffer::clear() {
  blocks_.clear();
  front_ = 0;
  size_ = 0;
}

size_t Buffer::peek(struct iovec* out, size_t max) const {
  size_t n = 0;
  for (size_t i = front_; i < blocks_.size(); ++i) {
    const Block& b = blocks_[i];
    if (n == max) break;
    if (b.readable() == 0) continue;
    out[n].iov_base = b.data.get() + b.begin;
    out[n].iov_len = b.readable();
    ++n;
  }
  return n;
}

void Buffer::copy_out(char* dst, size_t len) const {
  for (size_t i = front_; i < blocks_.size(); ++i) {
    const Block& b = blocks_[i];
    if (len == 0) break;
    size_t n = std::min(len, b.readable());
    std::memcpy(dst, b.data.get() + b.begin, n);
    dst += n;
    len -= n;
  }
}

std::string Buffer::to_string() const {
  std::string s(size_, '\0');
  copy_out(s.data(), size_);
  return s;
}

}  // namespace meshbox
