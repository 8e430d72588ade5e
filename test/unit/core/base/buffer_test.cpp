// Tests for core/base/buffer.h: the block chain that holds bytes a socket or parser could not
// take yet.
#include "core/base/buffer.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "core/base/random.h"

namespace meshbox {
namespace {

std::string pattern(size_t n, size_t offset = 0) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i)
    s[i] = static_cast<char>('a' + (offset + i) % 26);
  return s;
}

// Concatenates what peek() returns.
std::string peek_all(const Buffer& b, size_t max = 64) {
  std::vector<iovec> iov(max);
  size_t n = b.peek(iov.data(), iov.size());
  std::string out;
  for (size_t i = 0; i < n; ++i)
    out.append(static_cast<const char*>(iov[i].iov_base), iov[i].iov_len);
  return out;
}

TEST_CASE("buffer: starts empty") {
  Buffer b;
  CHECK(b.empty());
  CHECK(b.size() == 0);
  CHECK(b.to_string().empty());
  iovec iov[4];
  CHECK(b.peek(iov, 4) == 0);
  b.drain(10);  // draining an empty buffer is a no-op
  CHECK(b.empty());
}

TEST_CASE("buffer: append and read back") {
  Buffer b;
  b.append("hello");
  b.append(std::string_view(" "));
  b.append("world", 5);
  b.append("", 0);
  CHECK(b.size() == 11);
  CHECK_FALSE(b.empty());
  CHECK(b.to_string() == "hello world");
  CHECK(peek_all(b) == "hello world");
  char out[5];
  b.copy_out(out, 5);
  CHECK(std::string(out, 5) == "hello");
}

TEST_CASE("buffer: appends spill over block boundaries") {
  Buffer b;
  std::string want;
  // Odd-sized pieces so that block ends fall inside a piece.
  for (size_t i = 0; want.size() < 3 * Buffer::kBlockSize; ++i) {
    std::string piece = pattern(1000 + i * 7, want.size());
    b.append(piece);
    want += piece;
  }
  CHECK(b.size() == want.size());
  CHECK(b.to_string() == want);
  iovec iov[16];
  size_t n = b.peek(iov, 16);
  CHECK(n >= 3);
  size_t total = 0;
  for (size_t i = 0; i < n; ++i) {
    CHECK(iov[i].iov_len > 0);
    CHECK(iov[i].iov_len <= Buffer::kBlockSize);
    total += iov[i].iov_len;
  }
  CHECK(total == want.size());
  CHECK(peek_all(b) == want);
}

TEST_CASE("buffer: one large append stays one piece") {
  Buffer b;
  std::string big = pattern(5 * Buffer::kBlockSize + 3);
  b.append(big);
  iovec iov[4];
  REQUIRE(b.peek(iov, 4) == 1);
  CHECK(iov[0].iov_len == big.size());
  CHECK(b.to_string() == big);
}

TEST_CASE("buffer: peek fills at most max iovecs") {
  Buffer b;
  b.append(pattern(Buffer::kBlockSize));
  b.append(pattern(Buffer::kBlockSize));
  b.append(pattern(Buffer::kBlockSize));
  iovec iov[2];
  CHECK(b.peek(iov, 2) == 2);
  CHECK(iov[0].iov_len == Buffer::kBlockSize);
  CHECK(b.peek(iov, 0) == 0);
}

TEST_CASE("buffer: drain from the front") {
  Buffer b;
  std::string want = pattern(3 * Buffer::kBlockSize + 100);
  b.append(want);
  b.append("tail");
  want += "tail";

  b.drain(10);
  want.erase(0, 10);
  CHECK(b.size() == want.size());
  CHECK(b.to_string() == want);

  // Across a block boundary.
  b.drain(3 * Buffer::kBlockSize);
  want.erase(0, 3 * Buffer::kBlockSize);
  CHECK(b.to_string() == want);
  CHECK(peek_all(b) == want);

  b.drain(want.size());
  CHECK(b.empty());
  CHECK(b.to_string().empty());
  iovec iov[2];
  CHECK(b.peek(iov, 2) == 0);
}

TEST_CASE("buffer: drain more than size empties the buffer") {
  Buffer b;
  b.append("abc");
  b.drain(100);
  CHECK(b.empty());
  b.append("def");
  CHECK(b.to_string() == "def");
}

TEST_CASE("buffer: a drained block is reused for the next append") {
  Buffer b;
  b.append(pattern(100));
  iovec first;
  REQUIRE(b.peek(&first, 1) == 1);
  b.drain(100);
  CHECK(b.empty());
  b.append(pattern(200, 5));
  iovec second;
  REQUIRE(b.peek(&second, 1) == 1);
  CHECK(second.iov_base == first.iov_base);  // the spare block, not a new allocation
  CHECK(b.to_string() == pattern(200, 5));
}

TEST_CASE("buffer: copy_out across blocks") {
  Buffer b;
  std::string want;
  for (int i = 0; i < 5; ++i) {
    std::string piece = pattern(Buffer::kBlockSize - 1, want.size());
    b.append(piece);
    want += piece;
  }
  b.drain(7);
  want.erase(0, 7);
  std::string out(Buffer::kBlockSize * 2 + 11, '\0');
  b.copy_out(out.data(), out.size());
  CHECK(out == want.substr(0, out.size()));
  CHECK(b.size() == want.size());  // copy_out does not consume
}

TEST_CASE("buffer: append(Buffer&&) moves every byte") {
  Buffer a, b;
  a.append("first;");
  b.append(pattern(2 * Buffer::kBlockSize));
  b.drain(3);
  std::string want = "first;" + pattern(2 * Buffer::kBlockSize).substr(3);
  a.append(std::move(b));
  CHECK(a.size() == want.size());
  CHECK(a.to_string() == want);
  CHECK(b.empty());  // NOLINT(bugprone-use-after-move): append(&&) leaves it empty
  CHECK(b.size() == 0);
  // Both stay usable.
  a.append("!");
  b.append("again");
  CHECK(a.to_string() == want + "!");
  CHECK(b.to_string() == "again");
  // Moving an empty buffer changes nothing.
  Buffer empty;
  a.append(std::move(empty));
  CHECK(a.to_string() == want + "!");
}

TEST_CASE("buffer: move construction and assignment carry the bytes") {
  Buffer a;
  a.append(pattern(Buffer::kBlockSize + 10));
  Buffer b(std::move(a));
  CHECK(b.size() == Buffer::kBlockSize + 10);
  CHECK(b.to_string() == pattern(Buffer::kBlockSize + 10));
  // The moved-from buffer is empty and usable (NOLINT: use after move is the point).
  CHECK(a.empty());  // NOLINT(bugprone-use-after-move)
  CHECK(a.size() == 0);
  a.drain(5);
  a.append("reused");
  CHECK(a.to_string() == "reused");

  Buffer c;
  c.append("old");
  c = std::move(b);
  CHECK(c.to_string() == pattern(Buffer::kBlockSize + 10));
  CHECK(b.empty());  // NOLINT(bugprone-use-after-move)
  iovec iov[2];
  CHECK(b.peek(iov, 2) == 0);
}

TEST_CASE("buffer: clear") {
  Buffer b;
  b.append(pattern(3 * Buffer::kBlockSize));
  b.clear();
  CHECK(b.empty());
  CHECK(b.size() == 0);
  b.append("x");
  CHECK(b.to_string() == "x");
}

TEST_CASE("buffer: random appends and drains match a string model") {
  Random rng(12345);
  Buffer b;
  std::string model;
  size_t offset = 0;
  for (int step = 0; step < 3000; ++step) {
    CAPTURE(step);
    switch (rng.below(4)) {
      case 0:
      case 1: {
        // Mostly small pieces, sometimes bigger than a block.
        size_t n = rng.below(8) == 0 ? rng.below(3 * Buffer::kBlockSize) : rng.below(700);
        std::string piece = pattern(n, offset);
        offset += n;
        b.append(piece);
        model += piece;
        break;
      }
      case 2: {
        size_t n = rng.below(model.size() + 1);
        b.drain(n);
        model.erase(0, n);
        break;
      }
      case 3: {
        Buffer other;
        std::string piece = pattern(rng.below(2000), offset);
        offset += piece.size();
        other.append(piece);
        b.append(std::move(other));
        model += piece;
        break;
      }
    }
    REQUIRE(b.size() == model.size());
    if (step % 50 == 0) {
      REQUIRE(b.to_string() == model);
      REQUIRE(peek_all(b, 1024) == model);
    }
  }
  CHECK(b.to_string() == model);
}

}  // namespace
}  // namespace meshbox
