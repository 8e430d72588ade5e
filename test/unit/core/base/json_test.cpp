// Tests for core/base/json.h: string escaping (always valid output), the Writer's commas and
// number overloads, the strict parser (what RFC 8259 rejects, error positions) and that no
// input, however broken, crashes it. Randomness is seeded, so a failure replays.
#include "core/base/json.h"

#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>

namespace meshbox::json {
namespace {

std::string quoted(std::string_view s) {
  std::string out;
  append_string(out, s);
  return out;
}

// Writes `v` back with the Writer.
void write(Writer& w, const Value& v) {
  switch (v.type) {
    case Value::Type::Null:
      w.null();
      break;
    case Value::Type::Bool:
      w.value(v.boolean);
      break;
    case Value::Type::Number:
      if (v.is_integer) {
        w.value(v.integer);
      } else {
        w.value(v.number);
      }
      break;
    case Value::Type::String:
      w.value(v.string);
      break;
    case Value::Type::Array:
      w.begin_array();
      for (const auto& e : v.array)
        write(w, e);
      w.end_array();
      break;
    case Value::Type::Object:
      w.begin_object();
      for (const auto& [k, e] : v.object) {
        w.key(k);
        write(w, e);
      }
      w.end_object();
      break;
  }
}

// Parses `text`, which must be valid.
Value must_parse(std::string_view text) {
  Result<Value> r = parse(text);
  INFO(text);
  REQUIRE_MESSAGE(r.has_value(), r.error().message());
  return std::move(r).value();
}

// The error message for `text`, which must be invalid.
std::string parse_error(std::string_view text) {
  Result<Value> r = parse(text);
  INFO(text);
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().code() == Code::InvalidArgument);
  return r.error().message();
}

TEST_CASE("json: append_string escapes quotes, backslashes and control characters") {
  CHECK(quoted("") == R"("")");
  CHECK(quoted("plain") == R"("plain")");
  CHECK(quoted("a\"b\\c/d") == R"("a\"b\\c/d")");
  CHECK(quoted("\n\t\r\b\f") == R"("\n\t\r\b\f")");
  CHECK(quoted(std::string_view("\x00\x01\x1f\x7f", 4)) == "\"\\u0000\\u0001\\u001f\x7f\"");
  std::string s = "prefix:";
  append_string(s, "x");
  CHECK(s == "prefix:\"x\"");  // appends, keeps what was there
}

TEST_CASE("json: append_string finds a byte to escape wherever it sits in a long string") {
  // The plain-run scan reads eight bytes at a time: put each kind of byte that must be
  // escaped (or checked as UTF-8) at every offset of strings of every length up to 40, so a
  // byte in any lane of a word, or in the tail, is found.
  const std::pair<char, std::string> kSpecial[] = {{'"', "\\\""},       {'\\', "\\\\"},
                                                   {'\n', "\\n"},       {'\x01', "\\u0001"},
                                                   {'\x1f', "\\u001f"}, {'\xff', "\xEF\xBF\xBD"}};
  for (size_t len = 1; len <= 40; ++len) {
    for (size_t at = 0; at < len; ++at) {
      for (const auto& [c, escaped] : kSpecial) {
        std::string in(len, 'a');
        in[at] = c;
        std::string want =
            "\"" + std::string(at, 'a') + escaped + std::string(len - at - 1, 'a') + "\"";
        INFO("len ", len, " at ", at, " byte ", static_cast<int>(static_cast<unsigned char>(c)));
        REQUIRE(quoted(in) == want);
      }
    }
    // The edges of the plain range stay as they are: ' ' (0x20), '~', 0x7f, '!' and '#'
    // (beside '"'), '[' and ']' (beside '\\').
    std::string edge(len, ' ');
    for (size_t i = 0; i < len; ++i)
      edge[i] = " ~\x7f!#[]"[i % 7];
    CHECK(quoted(edge) == "\"" + edge + "\"");
  }
  // Long strings too, plain or not.
  const std::string long_plain(300, 'x');
  CHECK(quoted(long_plain) == "\"" + long_plain + "\"");
  CHECK(quoted(long_plain + "\"") == "\"" + long_plain + "\\\"\"");
}

TEST_CASE("json: two bytes to escape anywhere, and write_string within max_string_size") {
  // After an escaped byte the scan starts again mid-string, and its last block overlaps bytes
  // already written: the second byte must be found wherever it sits, and nothing else.
  auto reference = [](std::string_view in) {
    std::string out = "\"";
    for (char c : in) {
      if (c == '"')
        out += "\\\"";
      else if (c == '\\')
        out += "\\\\";
      else if (c == '\x01')
        out += "\\u0001";
      else
        out += c;
    }
    return out + "\"";
  };
  const char kSpecial[] = {'"', '\\', '\x01'};
  for (size_t len = 2; len <= 36; ++len) {
    for (size_t a = 0; a < len; ++a) {
      for (size_t b = a + 1; b < len; ++b) {
        for (char c : kSpecial) {
          std::string in(len, '#');  // '#' is '"' + 1: a borrow would flag it
          in[a] = c;
          in[b] = kSpecial[(a + b) % 3];
          INFO("len ", len, " at ", a, " and ", b);
          std::string want = reference(in);
          REQUIRE(quoted(in) == want);
          std::string room(max_string_size(in.size()), '\0');
          char* end = write_string(room.data(), in);
          REQUIRE(std::string_view(room.data(), static_cast<size_t>(end - room.data())) == want);
        }
      }
    }
  }
  // The worst case fills the bound exactly.
  std::string controls(20, '\x02');
  std::string room(max_string_size(controls.size()), '\0');
  CHECK(static_cast<size_t>(write_string(room.data(), controls) - room.data()) == room.size());
}

TEST_CASE("json: copy_plain copies exactly the plain run, and stays within its room") {
  // Every length up to 40, plain or with one byte to escape at every offset: the return is
  // plain_run's, the bytes before it are the input's, and nothing is written beyond the
  // input's size (a guard byte there must survive).
  const char kSpecial[] = {'"', '\\', '\x01', '\x80'};
  for (size_t len = 0; len <= 40; ++len) {
    for (size_t at = 0; at <= len; ++at) {
      for (char c : kSpecial) {
        std::string in(len, '#');
        for (size_t i = 0; i < len; ++i)
          in[i] = static_cast<char>('a' + i % 26);
        if (at < len) in[at] = c;
        std::string room(len + 1, '\0');
        room[len] = '\x5a';
        INFO("len ", len, " at ", at, " byte ", static_cast<int>(static_cast<unsigned char>(c)));
        size_t run = copy_plain(room.data(), in);
        REQUIRE(run == plain_run(in, 0));
        REQUIRE(run == (at < len ? at : len));
        REQUIRE(room.substr(0, run) == in.substr(0, run));
        REQUIRE(room[len] == '\x5a');
        if (at == len) break;  // plain: one pass is enough
      }
    }
  }
}

TEST_CASE("json: append_string keeps valid UTF-8 and replaces each invalid byte with U+FFFD") {
  const std::string kFffd = "\xEF\xBF\xBD";
  CHECK(quoted("é€😀") == "\"é€😀\"");
  CHECK(quoted("\xFF") == "\"" + kFffd + "\"");
  CHECK(quoted("a\x80z") == "\"a" + kFffd + "z\"");                      // stray continuation byte
  CHECK(quoted("\xC0\xAF") == "\"" + kFffd + kFffd + "\"");              // overlong '/'
  CHECK(quoted("\xED\xA0\x80") == "\"" + kFffd + kFffd + kFffd + "\"");  // UTF-8 surrogate
  CHECK(quoted("\xF4\x90\x80\x80") == "\"" + kFffd + kFffd + kFffd + kFffd + "\"");  // >10FFFF
  CHECK(quoted("\xE2\x82") == "\"" + kFffd + kFffd + "\"");    // truncated at the end
  CHECK(quoted("\xE2\x82z") == "\"" + kFffd + kFffd + "z\"");  // truncated in the middle

  // Whatever the bytes, the output parses, to a string of the same length in characters or
  // longer (each bad byte becomes three).
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> byte(0, 255), len(0, 64);
  for (int i = 0; i < 2000; ++i) {
    std::string in(static_cast<size_t>(len(rng)), '\0');
    for (char& c : in)
      c = static_cast<char>(byte(rng));
    std::string out = quoted(in);
    Result<Value> v = parse(out);
    INFO(out);
    REQUIRE_MESSAGE(v.has_value(), v.error().message());
    CHECK(v->is_string());
  }
  // Valid UTF-8 comes back byte for byte.
  CHECK(must_parse(quoted("ünï\x01\"cödé\n")).as_string() == "ünï\x01\"cödé\n");
}

TEST_CASE("json: Writer places commas and colons") {
  Writer w;
  w.begin_object()
      .field("name", "reviews")
      .field("port", 9080)
      .key("tags")
      .begin_array()
      .value("a")
      .begin_object()
      .end_object()
      .begin_array()
      .end_array()
      .null()
      .end_array()
      .key("nested")
      .begin_object()
      .field("ok", true)
      .field("no", false)
      .end_object()
      .key("raw")
      .raw(R"({"x":[1,2]})")
      .end_object();
  CHECK(w.str() ==
        R"({"name":"reviews","port":9080,"tags":["a",{},[],null],"nested":{"ok":true,"no":false},)"
        R"("raw":{"x":[1,2]}})");
  CHECK(must_parse(w.str()).get("nested")->get("ok")->as_bool() == true);

  std::string taken = w.take();
  CHECK(taken.front() == '{');
  CHECK(w.str().empty());
  w.begin_array().value(1).value(2).end_array();  // a fresh document after take()
  CHECK(w.str() == "[1,2]");

  Writer scalar;
  scalar.value("alone");
  CHECK(scalar.str() == R"("alone")");
}

TEST_CASE("json: Writer takes every integer type without ambiguity") {
  Writer w;
  w.begin_array();
  w.value(int{-1});
  w.value(uint32_t{4000000000u});
  w.value(size_t{42});
  w.value(int64_t{std::numeric_limits<int64_t>::min()});
  w.value(uint64_t{std::numeric_limits<uint64_t>::max()});
  w.value(static_cast<long long>(-7));
  w.value(static_cast<unsigned short>(65535));
  w.value(static_cast<int8_t>(-128));
  w.end_array();
  CHECK(w.str() == "[-1,4000000000,42,-9223372036854775808,18446744073709551615,-7,65535,-128]");
}

TEST_CASE("json: Writer writes the shortest exact double, and null for NaN and infinities") {
  Writer w;
  w.begin_array()
      .value(0.1)
      .value(-2.5)
      .value(1e300)
      .value(3.0)
      .value(5e-324)
      .value(std::nan(""))
      .value(std::numeric_limits<double>::infinity())
      .value(-std::numeric_limits<double>::infinity())
      .value(1.5f)
      .end_array();
  CHECK(w.str() == "[0.1,-2.5,1e+300,3,5e-324,null,null,null,1.5]");
  Value v = must_parse(w.str());
  CHECK(v.array.at(0).number == 0.1);
  CHECK(v.array.at(4).number == 5e-324);
}

TEST_CASE("json: parse builds the DOM with members in document order") {
  Value v = must_parse(R"( {"z": 1, "a": [true, false, null, "s"], "m": {"k": -0.5e1}, "z": 2} )");
  REQUIRE(v.is_object());
  REQUIRE(v.object.size() == 4);
  CHECK(v.object[0].first == "z");
  CHECK(v.object[1].first == "a");
  CHECK(v.object[2].first == "m");
  CHECK(v.get("z")->as_int() == 1);  // duplicates are kept; get() finds the first
  CHECK(v.object[3].second.as_int() == 2);
  const Value* a = v.get("a");
  REQUIRE(a);
  REQUIRE(a->is_array());
  CHECK(a->array.size() == 4);
  CHECK(a->array[0].as_bool() == true);
  CHECK(a->array[1].as_bool() == false);
  CHECK(a->array[2].is_null());
  CHECK(a->array[3].as_string() == "s");
  CHECK(v.get("m")->get("k")->as_number() == -5.0);
  CHECK_FALSE(v.get("m")->get("k")->as_int());  // written with an exponent: not an integer
  CHECK(v.get("missing") == nullptr);
  CHECK(a->get("z") == nullptr);  // not an object
  CHECK(a->as_string().empty());  // not a string
  CHECK_FALSE(a->as_bool());
  CHECK_FALSE(a->as_number());

  // Any value may be the whole document.
  CHECK(must_parse("42").as_int() == 42);
  CHECK(must_parse("\"x\"").as_string() == "x");
  CHECK(must_parse(" null ").is_null());
  CHECK(must_parse("[]").array.empty());
  CHECK(must_parse("{}").object.empty());
}

TEST_CASE("json: integers are exact up to int64_t, larger numbers are doubles") {
  Value big = must_parse("9007199254740993");  // 2^53 + 1: a double would round it
  CHECK(big.as_int() == 9007199254740993);
  CHECK(must_parse("-9223372036854775808").as_int() == std::numeric_limits<int64_t>::min());
  Value over = must_parse("9223372036854775808");
  CHECK_FALSE(over.as_int());
  CHECK(over.as_number() == 9223372036854775808.0);
  CHECK(must_parse("-0").as_int() == 0);
  CHECK_FALSE(must_parse("1.0").as_int());
  CHECK(must_parse("1E2").as_number() == 100.0);
  CHECK(must_parse("1e-2").as_number() == 0.01);
  CHECK(must_parse("0.5").as_number() == 0.5);
}

TEST_CASE("json: strings decode every escape, surrogate pairs included") {
  CHECK(must_parse(R"("\" \\ \/ \b \f \n \r \t")").as_string() == "\" \\ / \b \f \n \r \t");
  CHECK(must_parse(R"("\u0041\u00e9\u20AC")").as_string() == "Aé€");
  CHECK(must_parse(R"("\u0000")").as_string() == std::string(1, '\0'));
  CHECK(must_parse(R"("\ud83d\ude00")").as_string() == "😀");
  CHECK(must_parse(R"("\uDBFF\uDFFF")").as_string() == "\xF4\x8F\xBF\xBF");  // U+10FFFF
  CHECK(must_parse("\"raw é😀\"").as_string() == "raw é😀");
}

TEST_CASE("json: what RFC 8259 does not allow is an error with its line and column") {
  CHECK(parse_error("") == "line 1, column 1: expected a value");
  CHECK(parse_error("   ") == "line 1, column 4: expected a value");
  CHECK(parse_error("[1,]") == "line 1, column 4: expected a value");
  CHECK(parse_error("{\"a\":1,}") == "line 1, column 8: expected a member name (a string)");
  CHECK(parse_error("{\n  \"a\": 1\n  \"b\": 2\n}") ==
        "line 3, column 3: expected ',' or '}' after an object member");
  CHECK(parse_error("{\"é\" 1}") == "line 1, column 6: expected ':' after the member name");
  CHECK(parse_error("[1 2]") == "line 1, column 4: expected ',' or ']' after an array element");
  CHECK(parse_error("// c\n1") == "line 1, column 1: expected a value");
  CHECK(parse_error("1 /* c */") == "line 1, column 3: expected end of input after the value");
  CHECK(parse_error("{} {}") == "line 1, column 4: expected end of input after the value");
  CHECK(parse_error("{'a':1}") == "line 1, column 2: expected a member name (a string)");
  CHECK(parse_error("{a:1}") == "line 1, column 2: expected a member name (a string)");
  CHECK(parse_error("01") == "line 1, column 2: expected end of input after the value");
  CHECK(parse_error("-") == "line 1, column 2: expected a digit");
  CHECK(parse_error("+1") == "line 1, column 1: expected a value");
  CHECK(parse_error(".5") == "line 1, column 1: expected a value");
  CHECK(parse_error("1.") == "line 1, column 3: expected a digit after the decimal point");
  CHECK(parse_error("1e+") == "line 1, column 4: expected a digit in the exponent");
  CHECK(parse_error("[1e999]") == "line 1, column 2: expected a number a double can hold");
  CHECK(parse_error("NaN") == "line 1, column 1: expected a value");
  CHECK(parse_error("tru") == "line 1, column 1: expected a value (true, false or null?)");
  CHECK(parse_error("nul") == "line 1, column 1: expected a value (true, false or null?)");
  CHECK(parse_error("\xEF\xBB\xBF{}") == "line 1, column 1: expected a value");  // BOM
  CHECK(parse_error("\"abc") == "line 1, column 5: expected '\"' to end the string");
  CHECK(parse_error("\"a\nb\"") ==
        "line 1, column 3: expected a character, not a raw control character (escape it)");
  CHECK(parse_error("\"\\x\"") ==
        "line 1, column 2: expected an escape: \\\" \\\\ \\/ \\b \\f \\n \\r \\t or \\uXXXX");
  CHECK(parse_error("\"\\u12G4\"") == "line 1, column 6: expected 4 hex digits after \\u");
  CHECK(parse_error("\"\\u12") == "line 1, column 4: expected 4 hex digits after \\u");
  CHECK(parse_error("\"é\xFF\"") == "line 1, column 3: expected valid UTF-8");
  CHECK(parse_error("\"\xC0\xAF\"") == "line 1, column 2: expected valid UTF-8");
  CHECK(parse_error("\"\xED\xA0\x80\"") == "line 1, column 2: expected valid UTF-8");
  CHECK(parse_error("\xFF") == "line 1, column 1: expected a value");
  // Lone surrogates: a high one alone, one followed by something else, a low one alone.
  CHECK(parse_error(R"("ab\ud83d")") ==
        "line 1, column 4: expected a low surrogate (\\uDC00-\\uDFFF) after a high one");
  CHECK(parse_error(R"("\ud83d\u0041")") ==
        "line 1, column 2: expected a low surrogate (\\uDC00-\\uDFFF) after a high one");
  CHECK(parse_error(R"("\ud83d\ud83d")") ==
        "line 1, column 2: expected a low surrogate (\\uDC00-\\uDFFF) after a high one");
  CHECK(parse_error(R"("\ude00")") ==
        "line 1, column 2: expected a high surrogate (\\uD800-\\uDBFF) before a low one");
}

TEST_CASE("json: nesting is limited to 64 arrays and objects") {
  auto nested = [](int n) {
    return std::string(static_cast<size_t>(n), '[') + "1" +
           std::string(static_cast<size_t>(n), ']');
  };
  CHECK(must_parse(nested(64)).is_array());
  CHECK(parse_error(nested(65)) ==
        "line 1, column 65: expected at most 64 nested arrays and objects");
  std::string objects;
  for (int i = 0; i < 65; ++i)
    objects += "{\"k\":";
  CHECK(parse_error(objects) ==
        "line 1, column 321: expected at most 64 nested arrays and objects");
  // A deep document far beyond the limit fails fast instead of exhausting the stack.
  CHECK(parse_error(std::string(1'000'000, '[')).find("64 nested") != std::string::npos);
}

TEST_CASE("json: what the Writer writes parses back to the same values") {
  Writer w;
  w.begin_object()
      .field("s", std::string_view("tab\tquote\"nul\0end", 17))
      .field("i", int64_t{-9007199254740993})
      .field("u", uint64_t{9007199254740993})
      .field("d", 123.456e-7)
      .field("b", true)
      .key("a")
      .begin_array()
      .value("x")
      .null()
      .end_array()
      .end_object();
  Value v = must_parse(w.str());
  CHECK(v.get("s")->as_string() == std::string_view("tab\tquote\"nul\0end", 17));
  CHECK(v.get("i")->as_int() == -9007199254740993);
  CHECK(v.get("u")->as_int() == 9007199254740993);
  CHECK(v.get("d")->as_number() == 123.456e-7);
  CHECK(v.get("b")->as_bool() == true);
  CHECK(v.get("a")->array.size() == 2);
  CHECK(v == must_parse(w.str()));
  CHECK_FALSE(v == must_parse(R"({"s":"other"})"));
}

// A document with every kind of token, for the robustness tests.
constexpr std::string_view kDocument = R"({
  "format": 1, "revision": 18446744073709551615, "neg": -12.5e-3,
  "resources": [
    {"kind": "service", "name": "r\u00e9views \ud83d\ude00", "toml": "[[service]]\nname = 'x'\n",
     "flags": [true, false, null], "empty": {}, "none": []}
  ]
})";

TEST_CASE("json: every prefix of a document, and every prefix plus a stray byte, is an error") {
  must_parse(kDocument);
  for (size_t n = 0; n < kDocument.size(); ++n) {
    std::string_view prefix = kDocument.substr(0, n);
    CAPTURE(n);
    Result<Value> r = parse(prefix);
    CHECK_FALSE(r.has_value());
    if (!r.has_value()) {
      CHECK(r.error().message().starts_with("line "));
      CHECK(r.error().message().find(": expected ") != std::string::npos);
    }
    for (char stray : {'\0', '"', '\\', ',', '}', ']', 'x', '\xFF'}) {
      std::string text(prefix);
      text += stray;
      (void)parse(text);  // must not crash (ASan/UBSan builds check more than that)
    }
  }
}

TEST_CASE("json: random changes to a document never crash the parser") {
  std::mt19937 rng(20240611);
  std::uniform_int_distribution<size_t> pos(0, kDocument.size() - 1);
  std::uniform_int_distribution<int> byte(0, 255), edits(1, 4);
  size_t still_valid = 0;
  for (int i = 0; i < 5000; ++i) {
    std::string text(kDocument);
    for (int e = edits(rng); e > 0; --e) {
      size_t p = pos(rng) % text.size();
      switch (byte(rng) % 3) {
        case 0:
          text[p] = static_cast<char>(byte(rng));
          break;
        case 1:
          text.erase(p, 1);
          break;
        default:
          text.insert(p, 1, static_cast<char>(byte(rng)));
      }
    }
    Result<Value> r = parse(text);
    if (r.has_value()) {
      ++still_valid;
      // A document that parses writes back into one that parses to the same value.
      Writer w;
      write(w, r.value());
      Result<Value> again = parse(w.str());
      REQUIRE_MESSAGE(again.has_value(), w.str());
      CHECK(again.value() == r.value());
    } else {
      CHECK(r.error().message().starts_with("line "));
    }
  }
  CHECK(still_valid < 5000);  // the edits did break documents: the test exercised errors
}

}  // namespace
}  // namespace meshbox::json
