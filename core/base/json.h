// JSON (RFC 8259) for meshbox's own files and APIs: a Writer that builds compact JSON into a
// string, and a strict parser into a small DOM (Value) that keeps object members in document
// order. What is written is always valid JSON (invalid UTF-8 becomes U+FFFD, NaN becomes null);
// what is parsed must be valid JSON, and no input, however broken, crashes the parser.
// Plain value types, no shared state; thread-agnostic.
#pragma once

#include <bit>
#include <concepts>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/base/result.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace meshbox::json {

#if defined(__SSE2__)
namespace detail {
// Bit k set: byte k of the 16 at `p` needs escaping (< 0x20, '"', '\\' or >= 0x80: as signed
// bytes, the last are negative, so one signed compare finds both ends).
inline unsigned special16(__m128i x) {
  __m128i m = _mm_or_si128(
      _mm_cmplt_epi8(x, _mm_set1_epi8(0x20)),
      _mm_or_si128(_mm_cmpeq_epi8(x, _mm_set1_epi8('"')), _mm_cmpeq_epi8(x, _mm_set1_epi8('\\'))));
  return static_cast<unsigned>(_mm_movemask_epi8(m));
}
inline __m128i load16(const char* p) {
  return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
}
inline unsigned special16(const char* p) {
  return special16(load16(p));
}
}  // namespace detail
#endif

namespace detail {
// True when none of the sizeof(W) bytes at `p` needs escaping. Each test sets a byte's high
// bit when that byte is < 0x20, '"', '\\' or >= 0x80 (exactly for the first such byte of a
// word, and at least once whenever there is one).
template <typename W>
inline bool plain_word(const char* p) {
  constexpr W kOnes = static_cast<W>(~W{0}) / 0xff, kHigh = kOnes * 0x80;
  const auto zero_byte = [](W x) { return static_cast<W>((x - kOnes) & ~x & kHigh); };
  W x;
  std::memcpy(&x, p, sizeof x);
  return (static_cast<W>((x - kOnes * 0x20) & ~x & kHigh) |
          zero_byte(static_cast<W>(x ^ (kOnes * '"'))) |
          zero_byte(static_cast<W>(x ^ (kOnes * '\\'))) | (x & kHigh)) == 0;
}
}  // namespace detail

/// Where the run of bytes that a JSON string holds as they are (printable ASCII but '"' and
/// '\\') starting at `i` ends: s.size() when none of them needs escaping. Inline, for writers
/// that take a plain string in one copy. Sixteen bytes at a time with SSE2; then, or without
/// it, eight (then four) at a time.
inline size_t plain_run(std::string_view s, size_t i) {
#if defined(__SSE2__)
  for (; i + 16 <= s.size(); i += 16) {
    if (unsigned m = detail::special16(s.data() + i))
      return i + static_cast<size_t>(std::countr_zero(m));
  }
  if (i < s.size() && s.size() >= 16) {
    // The last 1..15 bytes: one more block, ending at the end, its bytes before `i` ignored.
    size_t at = s.size() - 16;
    unsigned m = detail::special16(s.data() + at) >> (i - at);
    return m ? i + static_cast<size_t>(std::countr_zero(m)) : s.size();
  }
#endif
  const size_t start = i;
  for (; i + 8 <= s.size(); i += 8) {
    if (!detail::plain_word<uint64_t>(s.data() + i)) break;
  }
  // The last 1..7 bytes after plain words: one more word, ending at the end (it overlaps
  // bytes this call already found plain).
  if (i < s.size() && i >= start + 8 && i + 8 > s.size() &&
      detail::plain_word<uint64_t>(s.data() + s.size() - 8))
    return s.size();
  if (i + 4 <= s.size() && i + 8 > s.size()) {
    // 4..7 bytes left (a short value: "default", "GET /"): two four-byte words that overlap.
    if (detail::plain_word<uint32_t>(s.data() + i) &&
        detail::plain_word<uint32_t>(s.data() + s.size() - 4))
      return s.size();
  }
  for (; i < s.size(); ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c == '"' || c == '\\' || c >= 0x80) break;
  }
  return i;
}

/// plain_run(s, 0) and a copy of those bytes to `out` in one pass, for writers that would
/// otherwise scan a value and then copy it: returns r = plain_run(s, 0); out[0, r) holds
/// s[0, r). It may also write bytes of `out` after r, never beyond out + s.size() (a caller that
/// escapes the value when r < s.size() writes over them).
inline size_t copy_plain(char* out, std::string_view s) {
  const char* in = s.data();
  const size_t n = s.size();
#if defined(__SSE2__)
  if (n >= 16) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
      __m128i x = detail::load16(in + i);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), x);
      if (unsigned m = detail::special16(x)) return i + static_cast<size_t>(std::countr_zero(m));
    }
    if (i == n) return n;
    // The last 1..15 bytes: one more block, ending at the end (its first bytes again).
    size_t at = n - 16;
    __m128i x = detail::load16(in + at);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + at), x);
    unsigned m = detail::special16(x) >> (i - at);
    return m ? i + static_cast<size_t>(std::countr_zero(m)) : n;
  }
#endif
  size_t run = plain_run(s, 0);
  // Short runs (most values): two words that overlap instead of a call to memcpy.
  if (run >= 8 && run <= 16) {
    uint64_t a, b;
    std::memcpy(&a, in, 8);
    std::memcpy(&b, in + run - 8, 8);
    std::memcpy(out, &a, 8);
    std::memcpy(out + run - 8, &b, 8);
  } else if (run >= 4 && run < 8) {
    uint32_t a, b;
    std::memcpy(&a, in, 4);
    std::memcpy(&b, in + run - 4, 4);
    std::memcpy(out, &a, 4);
    std::memcpy(out + run - 4, &b, 4);
  } else {
    for (size_t i = 0; i < run; ++i)
      out[i] = in[i];
  }
  return run;
}

/// Appends `s` as a JSON string literal, quotes included. `"`, `\` and control characters are
/// escaped (\n \t \r \b \f, others \u00XX); each byte that is not part of valid UTF-8 becomes
/// U+FFFD, so the output is valid JSON whatever `s` holds.
void append_string(std::string& out, std::string_view s);

/// The most bytes write_string() writes for a string of `n` bytes: the quotes, and every
/// byte escaped as \u00XX.
constexpr size_t max_string_size(size_t n) {
  return 6 * n + 2;
}
/// As append_string, into a buffer with room for max_string_size(s.size()) bytes, for a
/// caller that bounds a whole line once (access logs); returns the end of what it wrote.
char* write_string(char* out, std::string_view s);

/// Builds one compact JSON document (no whitespace). Commas are written automatically:
///
///   Writer w;
///   w.begin_object().field("name", "reviews").field("port", 9080).end_object();
///   w.str() == R"({"name":"reviews","port":9080})"
///
/// Misuse (a value without a key inside an object, unbalanced end_*()) is a programming error,
/// caught by MB_ASSERT in debug builds.
class Writer {
 public:
  Writer& begin_object();
  Writer& end_object();
  Writer& begin_array();
  Writer& end_array();
  /// The next member's name; a value (or begin_*) must follow.
  Writer& key(std::string_view name);

  Writer& value(std::string_view s);
  Writer& value(const char* s) { return value(std::string_view(s)); }
  Writer& value(int64_t n);
  Writer& value(uint64_t n);
  /// Every other integer type (int, uint32_t, long long, …): without this, value(int) would be
  /// ambiguous between the int64_t, uint64_t and double overloads. bool and char are excluded
  /// (value(bool) is its own overload; a char is more likely a mistake than a number).
  template <std::integral T>
  requires(!std::same_as<T, bool> && !std::same_as<T, char>) Writer& value(T n) {
    if constexpr (std::is_signed_v<T>) {
      return value(static_cast<int64_t>(n));
    } else {
      return value(static_cast<uint64_t>(n));
    }
  }
  /// Shortest text that reads back as the same double; NaN and infinities are written as null
  /// (JSON has no such numbers).
  Writer& value(double n);
  Writer& value(bool b);
  Writer& null();
  /// Inserts `json`, already encoded (one complete JSON value), as the next value. Not checked.
  Writer& raw(std::string_view json);

  /// key(name) then value(v).
  template <typename T>
  Writer& field(std::string_view name, T&& v) {
    key(name);
    return value(std::forward<T>(v));
  }

  /// The text so far (a complete document once every begin_* has its end_*).
  const std::string& str() const { return out_; }
  /// Moves the text out; the writer is empty afterwards and may start a new document.
  std::string take();

 private:
  // Before any value or begin_*: the comma, when this is not the first element of its container
  // and does not follow a key.
  void separate();
  void open(char c, bool object);
  void close(char c, bool object);

  std::string out_;
  // One entry per open container: whether it is an object, and whether it has an element yet.
  struct Level {
    bool object;
    bool has_element;
  };
  std::vector<Level> stack_;
  bool after_key_ = false;
};

/// A parsed JSON value. Objects keep their members in document order, duplicates included
/// (get() finds the first).
struct Value {
  enum class Type { Null, Bool, Number, String, Array, Object };

  Type type = Type::Null;
  bool boolean = false;
  double number = 0;
  /// The number was written without fraction or exponent and fits in int64_t: `integer` holds
  /// it exactly (`number` may have rounded it, beyond 2^53).
  bool is_integer = false;
  int64_t integer = 0;
  std::string string;
  std::vector<Value> array;
  std::vector<std::pair<std::string, Value>> object;

  bool is_null() const { return type == Type::Null; }
  bool is_bool() const { return type == Type::Bool; }
  bool is_number() const { return type == Type::Number; }
  bool is_string() const { return type == Type::String; }
  bool is_array() const { return type == Type::Array; }
  bool is_object() const { return type == Type::Object; }

  /// The first member named `key` of an object; nullptr if absent or not an object.
  const Value* get(std::string_view key) const;
  /// The string; empty if this is not a string.
  const std::string& as_string() const;
  std::optional<bool> as_bool() const;
  std::optional<double> as_number() const;
  /// The integer, if this is an integer number (see is_integer).
  std::optional<int64_t> as_int() const;

  /// Same type and same contents (numbers compare as doubles; member order matters).
  bool operator==(const Value& other) const;
};

/// Parses one JSON document (RFC 8259, strict): no comments, no trailing commas, no byte order
/// mark, UTF-8 only, surrogate pairs in \u escapes decoded (a lone surrogate is an error), at
/// most 64 nested arrays and objects. An error is Code::InvalidArgument with a message such as
/// "line 3, column 7: expected ',' or '}' after an object member" (columns count characters).
Result<Value> parse(std::string_view text);

}  // namespace meshbox::json
