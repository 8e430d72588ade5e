#include "core/base/json.h"

#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>
#include <system_error>

#include "core/base/assert.h"

namespace meshbox::json {

namespace {

constexpr int kMaxDepth = 64;

// The length of the valid UTF-8 sequence at the start of `s` (1 to 4), storing its code point;
// 0 if it is not valid UTF-8: a stray continuation byte, a truncated sequence, an overlong
// form, a UTF-16 surrogate (U+D800..DFFF) or a code point above U+10FFFF (RFC 3629).
size_t decode_utf8(std::string_view s, uint32_t* cp) {
  auto byte = [&](size_t i) { return static_cast<unsigned char>(s[i]); };
  unsigned char b0 = byte(0);
  if (b0 < 0x80) {
    *cp = b0;
    return 1;
  }
  size_t len;
  uint32_t c;
  uint32_t min;
  if ((b0 & 0xE0) == 0xC0) {
    len = 2, c = b0 & 0x1F, min = 0x80;
  } else if ((b0 & 0xF0) == 0xE0) {
    len = 3, c = b0 & 0x0F, min = 0x800;
  } else if ((b0 & 0xF8) == 0xF0) {
    len = 4, c = b0 & 0x07, min = 0x10000;
  } else {
    return 0;
  }
  if (s.size() < len) return 0;
  for (size_t i = 1; i < len; ++i) {
    if ((byte(i) & 0xC0) != 0x80) return 0;
    c = (c << 6) | (byte(i) & 0x3F);
  }
  if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return 0;
  *cp = c;
  return len;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

}  // namespace

char* write_string(char* out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  *out++ = '"';
  size_t i = 0;
  while (i < s.size()) {
    // Copy the longest run that needs no escaping at once: most strings are plain ASCII.
    size_t run = plain_run(s, i);
    std::memcpy(out, s.data() + i, run - i);
    out += run - i;
    i = run;
    if (i == s.size()) break;
    auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      uint32_t cp;
      size_t len = decode_utf8(s.substr(i), &cp);
      if (len == 0) {
        // U+FFFD, for this one byte; the next is looked at afresh.
        std::memcpy(out, "\xEF\xBF\xBD", 3);
        out += 3;
        ++i;
      } else {
        std::memcpy(out, s.data() + i, len);
        out += len;
        i += len;
      }
      continue;
    }
    char short_escape = 0;
    switch (c) {
      case '"':
        short_escape = '"';
        break;
      case '\\':
        short_escape = '\\';
        break;
      case '\n':
        short_escape = 'n';
        break;
      case '\t':
        short_escape = 't';
        break;
      case '\r':
        short_escape = 'r';
        break;
      case '\b':
        short_escape = 'b';
        break;
      case '\f':
        short_escape = 'f';
        break;
      default:
        break;
    }
    *out++ = '\\';
    if (short_escape) {
      *out++ = short_escape;
    } else {
      std::memcpy(out, "u00", 3);
      out[3] = kHex[c >> 4];
      out[4] = kHex[c & 0xF];
      out += 5;
    }
    ++i;
  }
  *out++ = '"';
  return out;
}

void append_string(std::string& out, std::string_view s) {
  if (plain_run(s, 0) == s.size()) {
    // The common case (access logs, APIs): nothing to escape, so the bytes go out in one
    // append.
    out += '"';
    out.append(s);
    out += '"';
    return;
  }
  size_t at = out.size();
  out.resize(at + max_string_size(s.size()));
  out.resize(static_cast<size_t>(write_string(out.data() + at, s) - out.data()));
}

// ---------------------------------------------------------------------------------------
// Writer

void Writer::separate() {
  if (after_key_) {
    after_key_ = false;
    return;
  }
  if (stack_.empty()) {
    MB_ASSERT(out_.empty());  // one value per document
    return;
  }
  Level& top = stack_.back();
  MB_ASSERT(!top.object);  // inside an object, key() comes first
  if (top.has_element) out_ += ',';
  top.has_element = true;
}

void Writer::open(char c, bool object) {
  separate();
  out_ += c;
  stack_.push_back({object, false});
}

void Writer::close(char c, bool object) {
  MB_ASSERT(!stack_.empty() && stack_.back().object == object && !after_key_);
  (void)object;
  stack_.pop_back();
  out_ += c;
}

Writer& Writer::begin_object() {
  open('{', true);
  return *this;
}
Writer& Writer::end_object() {
  close('}', true);
  return *this;
}
Writer& Writer::begin_array() {
  open('[', false);
  return *this;
}
Writer& Writer::end_array() {
  close(']', false);
  return *this;
}

Writer& Writer::key(std::string_view name) {
  MB_ASSERT(!stack_.empty() && stack_.back().object && !after_key_);
  Level& top = stack_.back();
  if (top.has_element) out_ += ',';
  top.has_element = true;
  append_string(out_, name);
  out_ += ':';
  after_key_ = true;
  return *this;
}

Writer& Writer::value(std::string_view s) {
  separate();
  append_string(out_, s);
  return *this;
}

Writer& Writer::value(int64_t n) {
  separate();
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, n);
  out_.append(buf, end);
  return *this;
}

Writer& Writer::value(uint64_t n) {
  separate();
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, n);
  out_.append(buf, end);
  return *this;
}

Writer& Writer::value(double n) {
  if (!std::isfinite(n)) return null();
  separate();
  // to_chars without a format gives the shortest text that parses back to the same double.
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, n);
  out_.append(buf, end);
  return *this;
}

Writer& Writer::value(bool b) {
  separate();
  out_ += b ? "true" : "false";
  return *this;
}

Writer& Writer::null() {
  separate();
  out_ += "null";
  return *this;
}

Writer& Writer::raw(std::string_view json) {
  separate();
  out_ += json;
  return *this;
}

std::string Writer::take() {
  stack_.clear();
  after_key_ = false;
  return std::exchange(out_, {});
}

// ---------------------------------------------------------------------------------------
// Value

const Value* Value::get(std::string_view key) const {
  if (type != Type::Object) return nullptr;
  for (const auto& [k, v] : object)
    if (k == key) return &v;
  return nullptr;
}

const std::string& Value::as_string() const {
  // Construct-on-first-use: no non-trivial global (STYLE.md §E).
  static const std::string kEmpty;
  return type == Type::String ? string : kEmpty;
}

std::optional<bool> Value::as_bool() const {
  if (type != Type::Bool) return std::nullopt;
  return boolean;
}

std::optional<double> Value::as_number() const {
  if (type != Type::Number) return std::nullopt;
  return number;
}

std::optional<int64_t> Value::as_int() const {
  if (type != Type::Number || !is_integer) return std::nullopt;
  return integer;
}

bool Value::operator==(const Value& other) const {
  if (type != other.type) return false;
  switch (type) {
    case Type::Null:
      return true;
    case Type::Bool:
      return boolean == other.boolean;
    case Type::Number:
      return is_integer && other.is_integer ? integer == other.integer : number == other.number;
    case Type::String:
      return string == other.string;
    case Type::Array:
      return array == other.array;
    case Type::Object:
      return object == other.object;
  }
  return false;
}

// ---------------------------------------------------------------------------------------
// Parser: recursive descent over the whole text, one function per grammar rule (RFC 8259 §2-7).
// Errors record the offset where the input went wrong; line and column are computed from it
// only when there is an error, so the happy path counts nothing.

namespace {

class Parser {
 public:
  explicit Parser(std::string_view text) : s_(text) {}

  Result<Value> run() {
    Value v;
    skip_ws();
    if (!parse_value(v, 0)) return error();
    skip_ws();
    if (i_ != s_.size()) {
      fail("expected end of input after the value");
      return error();
    }
    return v;
  }

 private:
  bool fail(std::string_view expected) {
    // Keep the first error: callers unwind after it without adding their own.
    if (expected_.empty()) {
      expected_ = expected;
      error_at_ = i_;
    }
    return false;
  }

  Status error() const {
    size_t line = 1, column = 1;
    for (size_t k = 0; k < error_at_ && k < s_.size(); ++k) {
      auto c = static_cast<unsigned char>(s_[k]);
      if (c == '\n') {
        ++line;
        column = 1;
      } else if ((c & 0xC0) != 0x80) {  // a continuation byte does not start a character
        ++column;
      }
    }
    return make_error(Code::InvalidArgument, "line " + std::to_string(line) + ", column " +
                                                 std::to_string(column) + ": " + expected_);
  }

  bool at_end() const { return i_ >= s_.size(); }
  char peek() const { return s_[i_]; }

  void skip_ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r'))
      ++i_;
  }

  bool literal(std::string_view word) {
    if (s_.substr(i_, word.size()) != word) return false;
    i_ += word.size();
    return true;
  }

  bool parse_value(Value& v, int depth) {
    if (at_end()) return fail("expected a value");
    switch (peek()) {
      case '{':
        return parse_object(v, depth + 1);
      case '[':
        return parse_array(v, depth + 1);
      case '"':
        v.type = Value::Type::String;
        return parse_string(v.string);
      case 't':
      case 'f':
      case 'n':
        if (literal("true")) {
          v.type = Value::Type::Bool;
          v.boolean = true;
          return true;
        }
        if (literal("false")) {
          v.type = Value::Type::Bool;
          v.boolean = false;
          return true;
        }
        if (literal("null")) {
          v.type = Value::Type::Null;
          return true;
        }
        return fail("expected a value (true, false or null?)");
      default:
        if (peek() == '-' || (peek() >= '0' && peek() <= '9')) return parse_number(v);
        return fail("expected a value");
    }
  }

  bool parse_object(Value& v, int depth) {
    if (depth > kMaxDepth) return fail("expected at most 64 nested arrays and objects");
    v.type = Value::Type::Object;
    ++i_;  // '{'
    skip_ws();
    if (!at_end() && peek() == '}') {
      ++i_;
      return true;
    }
    while (true) {
      if (at_end() || peek() != '"') return fail("expected a member name (a string)");
      std::string key;
      if (!parse_string(key)) return false;
      skip_ws();
      if (at_end() || peek() != ':') return fail("expected ':' after the member name");
      ++i_;
      skip_ws();
      v.object.emplace_back(std::move(key), Value{});
      if (!parse_value(v.object.back().second, depth)) return false;
      skip_ws();
      if (at_end()) return fail("expected ',' or '}' after an object member");
      if (peek() == '}') {
        ++i_;
        return true;
      }
      if (peek() != ',') return fail("expected ',' or '}' after an object member");
      ++i_;
      skip_ws();
    }
  }

  bool parse_array(Value& v, int depth) {
    if (depth > kMaxDepth) return fail("expected at most 64 nested arrays and objects");
    v.type = Value::Type::Array;
    ++i_;  // '['
    skip_ws();
    if (!at_end() && peek() == ']') {
      ++i_;
      return true;
    }
    while (true) {
      v.array.emplace_back();
      if (!parse_value(v.array.back(), depth)) return false;
      skip_ws();
      if (at_end()) return fail("expected ',' or ']' after an array element");
      if (peek() == ']') {
        ++i_;
        return true;
      }
      if (peek() != ',') return fail("expected ',' or ']' after an array element");
      ++i_;
      skip_ws();
    }
  }

  bool parse_number(Value& v) {
    size_t start = i_;
    auto digits = [&] {
      size_t from = i_;
      while (!at_end() && peek() >= '0' && peek() <= '9')
        ++i_;
      return i_ - from;
    };
    if (peek() == '-') ++i_;
    if (at_end() || !(peek() >= '0' && peek() <= '9')) return fail("expected a digit");
    if (peek() == '0') {
      ++i_;  // no leading zeros: "01" ends the number after "0", and what follows is an error
    } else {
      digits();
    }
    bool integral = true;
    if (!at_end() && peek() == '.') {
      ++i_;
      integral = false;
      if (digits() == 0) return fail("expected a digit after the decimal point");
    }
    if (!at_end() && (peek() == 'e' || peek() == 'E')) {
      ++i_;
      integral = false;
      if (!at_end() && (peek() == '+' || peek() == '-')) ++i_;
      if (digits() == 0) return fail("expected a digit in the exponent");
    }
    const char* first = s_.data() + start;
    const char* last = s_.data() + i_;
    v.type = Value::Type::Number;
    if (integral) {
      int64_t n;
      auto [end, ec] = std::from_chars(first, last, n);
      if (ec == std::errc() && end == last) {
        v.is_integer = true;
        v.integer = n;
        v.number = static_cast<double>(n);
        return true;
      }
      // Too large for int64_t: kept as a double only.
    }
    double d;
    auto [end, ec] = std::from_chars(first, last, d);
    if (ec != std::errc() || end != last) {
      // RFC 8259 §6 lets a parser limit the range; silently turning 1e999 into infinity (or
      // 1e-999 into zero) would hide the problem.
      i_ = start;
      return fail("expected a number a double can hold");
    }
    v.number = d;
    return true;
  }

  bool hex4(uint32_t* out) {
    if (s_.size() - i_ < 4) return fail("expected 4 hex digits after \\u");
    uint32_t n = 0;
    for (int k = 0; k < 4; ++k) {
      char c = s_[i_];
      uint32_t d;
      if (c >= '0' && c <= '9') {
        d = static_cast<uint32_t>(c - '0');
      } else if (c >= 'a' && c <= 'f') {
        d = static_cast<uint32_t>(c - 'a' + 10);
      } else if (c >= 'A' && c <= 'F') {
        d = static_cast<uint32_t>(c - 'A' + 10);
      } else {
        return fail("expected 4 hex digits after \\u");
      }
      n = n * 16 + d;
      ++i_;
    }
    *out = n;
    return true;
  }

  bool parse_string(std::string& out) {
    ++i_;  // '"'
    while (true) {
      if (at_end()) return fail("expected '\"' to end the string");
      auto c = static_cast<unsigned char>(peek());
      if (c == '"') {
        ++i_;
        return true;
      }
      if (c < 0x20) return fail("expected a character, not a raw control character (escape it)");
      if (c >= 0x80) {
        uint32_t cp;
        size_t len = decode_utf8(s_.substr(i_), &cp);
        if (len == 0) return fail("expected valid UTF-8");
        out.append(s_.data() + i_, len);
        i_ += len;
        continue;
      }
      if (c != '\\') {
        out += static_cast<char>(c);
        ++i_;
        continue;
      }
      ++i_;
      if (at_end()) return fail("expected an escape after '\\'");
      char e = peek();
      ++i_;
      switch (e) {
        case '"':
          out += '"';
          break;
        case '\\':
          out += '\\';
          break;
        case '/':
          out += '/';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'u': {
          size_t escape_at = i_ - 2;
          uint32_t cp;
          if (!hex4(&cp)) return false;
          if (cp >= 0xDC00 && cp <= 0xDFFF) {
            i_ = escape_at;
            return fail("expected a high surrogate (\\uD800-\\uDBFF) before a low one");
          }
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            uint32_t low;
            if (!literal("\\u") || !hex4(&low) || low < 0xDC00 || low > 0xDFFF) {
              i_ = escape_at;
              expected_.clear();  // replace whatever hex4() said: the pair is the problem
              return fail("expected a low surrogate (\\uDC00-\\uDFFF) after a high one");
            }
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
          }
          append_utf8(out, cp);
          break;
        }
        default:
          i_ -= 2;
          return fail("expected an escape: \\\" \\\\ \\/ \\b \\f \\n \\r \\t or \\uXXXX");
      }
    }
  }

  std::string_view s_;
  size_t i_ = 0;
  std::string expected_;
  size_t error_at_ = 0;
};

}  // namespace

Result<Value> parse(std::string_view text) {
  return Parser(text).run();
}

}  // namespace meshbox::json
