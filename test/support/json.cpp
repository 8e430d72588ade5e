#include "test/support/json.h"

#include <cstdlib>

namespace meshbox::test {

namespace {

class Reader {
 public:
  explicit Reader(std::string_view s) : s_(s) {}

  bool value(Json& out, int depth) {
    if (depth > 64) return false;
    ws();
    if (eof()) return false;
    char c = s_[i_];
    if (c == '{') return object(out, depth);
    if (c == '[') return array(out, depth);
    if (c == '"') {
      out.type = Json::Type::String;
      return string(out.string);
    }
    if (literal("true")) {
      out.type = Json::Type::Bool;
      out.boolean = true;
      return true;
    }
    if (literal("false")) {
      out.type = Json::Type::Bool;
      return true;
    }
    if (literal("null")) return true;
    return number(out);
  }

  bool at_end() {
    ws();
    return eof();
  }

 private:
  bool eof() const { return i_ >= s_.size(); }
  void ws() {
    while (!eof() && (s_[i_] == ' ' || s_[i_] == '\n' || s_[i_] == '\r' || s_[i_] == '\t'))
      ++i_;
  }
  bool consume(char c) {
    ws();
    if (eof() || s_[i_] != c) return false;
    ++i_;
    return true;
  }
  bool literal(std::string_view lit) {
    if (s_.substr(i_, lit.size()) != lit) return false;
    i_ += lit.size();
    return true;
  }

  bool number(Json& out) {
    size_t start = i_;
    while (!eof() && std::string_view("+-0123456789.eE").find(s_[i_]) != std::string_view::npos)
      ++i_;
    if (i_ == start) return false;
    std::string text(s_.substr(start, i_ - start));
    char* end = nullptr;
    out.number = std::strtod(text.c_str(), &end);
    out.type = Json::Type::Number;
    return end == text.c_str() + text.size();
  }

  static void put_utf8(std::string& out, unsigned cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xc0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    } else {
      out += static_cast<char>(0xe0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    }
  }

  bool string(std::string& out) {
    if (!consume('"')) return false;
    while (!eof()) {
      char c = s_[i_++];
      if (c == '"') return true;
      if (c != '\\') {
        out += c;
        continue;
      }
      if (eof()) return false;
      char e = s_[i_++];
      switch (e) {
        case 'n':
          out += '\n';
          break;
        case 't':
          out += '\t';
          break;
        case 'r':
          out += '\r';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'u': {
          if (i_ + 4 > s_.size()) return false;
          std::string hex(s_.substr(i_, 4));
          char* end = nullptr;
          unsigned cp = static_cast<unsigned>(std::strtoul(hex.c_str(), &end, 16));
          if (end != hex.c_str() + 4) return false;
          i_ += 4;
          put_utf8(out, cp);  // surrogate pairs are not needed by these tests
          break;
        }
        default:
          out += e;  // \" \\ \/
      }
    }
    return false;
  }

  bool array(Json& out, int depth) {
    out.type = Json::Type::Array;
    consume('[');
    if (consume(']')) return true;
    do {
      out.array.emplace_back();
      if (!value(out.array.back(), depth + 1)) return false;
    } while (consume(','));
    return consume(']');
  }

  bool object(Json& out, int depth) {
    out.type = Json::Type::Object;
    consume('{');
    if (consume('}')) return true;
    do {
      std::string key;
      ws();
      if (!string(key) || !consume(':')) return false;
      if (!value(out.object[key], depth + 1)) return false;
    } while (consume(','));
    return consume('}');
  }

  std::string_view s_;
  size_t i_ = 0;
};

}  // namespace

const Json* Json::get(const std::string& key) const {
  auto it = object.find(key);
  return it == object.end() ? nullptr : &it->second;
}

std::optional<Json> parse_json(std::string_view text) {
  Reader r(text);
  Json j;
  if (!r.value(j, 0) || !r.at_end()) return std::nullopt;
  return j;
}

}  // namespace meshbox::test
