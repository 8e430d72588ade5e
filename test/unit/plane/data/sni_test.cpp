// Tests for plane/data/sni.h: the ClientHello parser (whole hellos, real and built here; every
// truncation; records split anywhere; bytes that are not TLS; each malformation it must refuse;
// the 16 KiB bound; garbage) and SNI pattern ranking.
#include "plane/data/sni.h"

#include <doctest/doctest.h>

#include <climits>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/base/random.h"

namespace meshbox::data {
namespace {

using Kind = SniResult::Kind;

// A ClientHello that openssl s_client 3.0 sent with -servername a.example.com (TLS 1.3, one
// record of 319 bytes).
constexpr const char* kOpensslHelloHex =
    "160301013a01000136030302001251e2e3333f3e8faa5905870c12af4bae301c1140098d620e02c93aea1e20290fd4"
    "569fa68c1f8c04c7db9d865ea9428cdd4967dc5ffb0465d282d3c0feb1003e130213031301c02cc030009fcca9cca8"
    "ccaac02bc02f009ec024c028006bc023c0270067c00ac0140039c009c0130033009d009c003d003c0035002f00ff01"
    "0000af00000012001000000d612e6578616d706c652e636f6d000b000403000102000a00160014001d0017001e0019"
    "001801000101010201030104002300000016000000170000000d002a0028040305030603080708080809080a080b08"
    "0408050806040105010601030303010302040205020602002b0009080304030303020301002d000201010033002600"
    "24001d0020fb22b3dc6fcbdc107414471d8089aec7a35009812777ab4775845ccbdb845316";

std::string from_hex(std::string_view hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2)
    out.push_back(static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
  return out;
}

std::string u16(size_t v) {
  return {static_cast<char>(v >> 8 & 0xff), static_cast<char>(v & 0xff)};
}

std::string u24(size_t v) {
  return {static_cast<char>(v >> 16 & 0xff), static_cast<char>(v >> 8 & 0xff),
          static_cast<char>(v & 0xff)};
}

std::string extension(uint16_t type, const std::string& data) {
  return u16(type) + u16(data.size()) + data;
}

// A server_name extension naming each of `names` (type host_name unless given).
std::string sni_extension(const std::vector<std::pair<uint8_t, std::string>>& names) {
  std::string list;
  for (const auto& [type, name] : names)
    list += std::string(1, static_cast<char>(type)) + u16(name.size()) + name;
  return extension(0, u16(list.size()) + list);
}

std::string sni_extension(const std::string& name) {
  return sni_extension({{0, name}});
}

// A ClientHello body: TLS 1.2 legacy version, a 32-byte session id, two suites, null
// compression, then `extensions` (nullopt: no extensions block at all, as TLS 1.0 allowed).
std::string hello_body(std::optional<std::string> extensions) {
  std::string b = "\x03\x03" + std::string(32, 'r');
  b += std::string(1, 32) + std::string(32, 's');
  b += u16(4) + std::string("\x13\x01\xc0\x2f", 4);
  b += std::string("\x01\x00", 2);
  if (extensions) b += u16(extensions->size()) + *extensions;
  return b;
}

std::string handshake(const std::string& body, uint8_t type = 1) {
  return std::string(1, static_cast<char>(type)) + u24(body.size()) + body;
}

// `payload` in records of at most `fragment` bytes each (content type `type`).
std::string records(const std::string& payload, size_t fragment = 16384, uint8_t type = 22) {
  std::string out;
  for (size_t at = 0; at < payload.size(); at += fragment) {
    std::string piece = payload.substr(at, fragment);
    out += std::string(1, static_cast<char>(type)) + "\x03\x01" + u16(piece.size()) + piece;
  }
  return out;
}

std::string hello(const std::string& name) {
  return records(handshake(hello_body(extension(10, u16(2) + u16(29)) + sni_extension(name) +
                                      extension(43, std::string("\x02\x03\x04", 3)))));
}

std::string describe(const SniResult& r) {
  const char* kinds[] = {"NeedMore", "NotTls", "Error", "Sni", "NoSni"};
  return std::string(kinds[static_cast<int>(r.kind)]) + " " + r.name + " " + std::string(r.error);
}

// Every proper prefix needs more; the whole gives `want`.
void check_every_truncation(const std::string& in, Kind want, const std::string& name = {}) {
  for (size_t n = 0; n < in.size(); ++n) {
    SniResult r = parse_sni(std::string_view(in).substr(0, n));
    INFO("prefix of " << n << " of " << in.size() << " bytes: " << describe(r));
    REQUIRE(r.kind == Kind::NeedMore);
  }
  SniResult r = parse_sni(in);
  INFO(describe(r));
  CHECK(r.kind == want);
  CHECK(r.name == name);
}

TEST_CASE("sni: a real ClientHello from openssl names its server") {
  std::string in = from_hex(kOpensslHelloHex);
  SniResult r = parse_sni(in);
  INFO(describe(r));
  CHECK(r.kind == Kind::Sni);
  CHECK(r.name == "a.example.com");
  check_every_truncation(in, Kind::Sni, "a.example.com");
}

TEST_CASE("sni: built hellos: with a name, with its case kept, without one") {
  CHECK(parse_sni(hello("shop.example.com")).name == "shop.example.com");
  SniResult upper = parse_sni(hello("Shop.EXAMPLE.com"));
  CHECK(upper.kind == Kind::Sni);
  CHECK(upper.name == "Shop.EXAMPLE.com");  // matching ignores case; the parser keeps it

  // No server_name extension; no extensions block at all (TLS 1.0); an empty block.
  CHECK(parse_sni(records(handshake(hello_body(extension(10, u16(2) + u16(29)))))).kind ==
        Kind::NoSni);
  CHECK(parse_sni(records(handshake(hello_body(std::nullopt)))).kind == Kind::NoSni);
  CHECK(parse_sni(records(handshake(hello_body(std::string())))).kind == Kind::NoSni);
  // Only a name type that is not host_name: no host name.
  CHECK(parse_sni(records(handshake(hello_body(sni_extension({{7, "x"}}))))).kind == Kind::NoSni);
  // A host_name after an unknown type is still found.
  SniResult mixed =
      parse_sni(records(handshake(hello_body(sni_extension({{7, "x"}, {0, "b.io"}})))));
  CHECK(mixed.kind == Kind::Sni);
  CHECK(mixed.name == "b.io");
}

TEST_CASE("sni: every truncation needs more, whole or split into records of any size") {
  std::string msg = handshake(hello_body(sni_extension("split.example.com")));
  for (size_t fragment : {size_t{1}, size_t{2}, size_t{3}, size_t{4}, size_t{5}, size_t{7},
                          size_t{40}, msg.size() - 1, msg.size()}) {
    INFO("fragment " << fragment);
    check_every_truncation(records(msg, fragment), Kind::Sni, "split.example.com");
  }
  // Two records split at every point of the message.
  for (size_t cut = 1; cut < msg.size(); ++cut) {
    std::string in = records(msg.substr(0, cut)) + records(msg.substr(cut));
    SniResult r = parse_sni(in);
    INFO("cut at " << cut << ": " << describe(r));
    CHECK(r.kind == Kind::Sni);
    CHECK(r.name == "split.example.com");
  }
}

TEST_CASE("sni: what follows the ClientHello is not looked at") {
  std::string msg = handshake(hello_body(sni_extension("a.io")));
  // Another handshake message in the same record, then a ChangeCipherSpec and early data.
  std::string in = records(msg + handshake("junk", 2)) + records("\x01", 16384, 20) +
                   records("early data", 16384, 23);
  SniResult r = parse_sni(in);
  CHECK(r.kind == Kind::Sni);
  CHECK(r.name == "a.io");
  // Even garbage right after the hello's record.
  CHECK(parse_sni(records(msg) + "GET / HTTP/1.1\r\n").kind == Kind::Sni);
}

TEST_CASE("sni: bytes that are not a TLS handshake are NotTls at the first byte that says so") {
  for (std::string in : {std::string("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), std::string("G"),
                         std::string("\x80\x2e\x01\x03\x01", 5),          // an SSLv2 ClientHello
                         std::string("\x15\x03\x01\x00\x02\x02\x28", 7),  // an alert
                         std::string("\x16\x02", 2), std::string("\x16\x00\x01", 3),
                         std::string("SSH-2.0-OpenSSH_9.2\r\n")}) {
    SniResult r = parse_sni(in);
    INFO(describe(r));
    CHECK(r.kind == Kind::NotTls);
    CHECK(!r.error.empty());
  }
  CHECK(parse_sni(std::string("\x16", 1)).kind == Kind::NeedMore);
  CHECK(parse_sni(std::string("\x16\x03", 2)).kind == Kind::NeedMore);
}

TEST_CASE("sni: malformed hellos are errors") {
  std::string good_ext = sni_extension("a.io");
  std::string body = hello_body(good_ext);
  struct Case {
    const char* what;
    std::string in;
  };
  std::string long_name(256, 'a');
  std::vector<Case> cases = {
      {"an empty record", std::string("\x16\x03\x01\x00\x00", 5)},
      {"a record over 2^14", std::string("\x16\x03\x01\x40\x01", 5)},
      {"a ServerHello", records(handshake(body, 2))},
      {"a ClientHello declared over the bound",
       std::string("\x16\x03\x01\x00\x04\x01\x00\x40\x00", 9)},
      {"an alert between fragments",
       records(handshake(body).substr(0, 10)) + records("\x02\x28", 16384, 21)},
      {"a bad version between fragments",
       records(handshake(body).substr(0, 10)) + std::string("\x16\x02", 2)},
      {"an empty record between fragments",
       records(handshake(body).substr(0, 10)) + std::string("\x16\x03\x01\x00\x00", 5)},
      {"a body shorter than version and random", records(handshake(std::string(20, 'x')))},
      {"a session id over 32 bytes",
       records(handshake("\x03\x03" + std::string(32, 'r') + std::string(1, 33) +
                         std::string(33, 's') + u16(2) + "\x13\x01" + "\x01\x00"))},
      {"an odd cipher suites length",
       records(handshake("\x03\x03" + std::string(32, 'r') + std::string(1, 0) + u16(3) +
                         "\x13\x01\x00" + "\x01\x00"))},
      {"no cipher suite", records(handshake("\x03\x03" + std::string(32, 'r') + std::string(1, 0) +
                                            u16(0) + "\x01\x00"))},
      {"no compression method",
       records(handshake("\x03\x03" + std::string(32, 'r') + std::string(1, 0) + u16(2) +
                         "\x13\x01" + std::string(1, 0)))},
      {"cipher suites running past the body",
       records(handshake("\x03\x03" + std::string(32, 'r') + std::string(1, 0) + u16(200) +
                         "\x13\x01"))},
      {"an extensions block longer than the body",
       records(handshake(body.substr(0, body.size() - 1)))},
      {"bytes after the extensions block", records(handshake(body + "x"))},
      {"a one-byte extensions length",
       records(handshake(hello_body(std::nullopt) + std::string(1, 0)))},
      {"a truncated extension header",
       records(handshake(hello_body(std::string("\x00\x0a\x00", 3))))},
      {"an extension longer than the block",
       records(handshake(hello_body(u16(10) + u16(9) + "ab")))},
      {"two server_name extensions", records(handshake(hello_body(good_ext + good_ext)))},
      {"an empty server name list", records(handshake(hello_body(extension(0, u16(0)))))},
      {"an empty server_name extension", records(handshake(hello_body(extension(0, ""))))},
      {"a server name list longer than its extension",
       records(handshake(hello_body(extension(0, u16(9) + std::string(1, 0) + u16(4) + "a.io"))))},
      {"a server name list shorter than its extension",
       records(handshake(
           hello_body(extension(0, u16(7) + std::string(1, 0) + u16(4) + "a.io" + "zz"))))},
      {"a host name running past its list",
       records(handshake(hello_body(extension(0, u16(7) + std::string(1, 0) + u16(9) + "a.io"))))},
      {"two host names", records(handshake(hello_body(sni_extension({{0, "a.io"}, {0, "b.io"}}))))},
      {"an empty host name", records(handshake(hello_body(sni_extension(""))))},
      {"a host name over 255 bytes", records(handshake(hello_body(sni_extension(long_name))))},
      {"a NUL in the host name",
       records(handshake(hello_body(sni_extension(std::string("a\0.io", 5)))))},
      {"a space in the host name", records(handshake(hello_body(sni_extension("a b.io"))))},
      {"a control byte in the host name", records(handshake(hello_body(sni_extension("a\n.io"))))},
      {"a non-ASCII host name", records(handshake(hello_body(sni_extension("caf\xc3\xa9.io"))))},
  };
  for (const Case& c : cases) {
    SniResult r = parse_sni(c.in);
    INFO(c.what << ": " << describe(r));
    CHECK(r.kind == Kind::Error);
    CHECK(!r.error.empty());
    CHECK(r.name.empty());
  }
  // 255 bytes is a host name still.
  CHECK(parse_sni(records(handshake(hello_body(sni_extension(std::string(255, 'a')))))).kind ==
        Kind::Sni);
}

TEST_CASE("sni: a ClientHello must end within kMaxClientHelloBytes") {
  // Padded (extension 21) so that the one record is exactly the bound: accepted.
  auto padded = [](size_t total) {
    std::string ext = sni_extension("big.example.com");
    size_t fixed = 5 + 4 + hello_body(ext + extension(21, "")).size();
    return records(handshake(hello_body(ext + extension(21, std::string(total - fixed, '\0')))));
  };
  std::string max = padded(kMaxClientHelloBytes);
  REQUIRE(max.size() == kMaxClientHelloBytes);
  CHECK(parse_sni(max).kind == Kind::Sni);
  // The same hello in two records no longer fits.
  std::string msg = max.substr(5);
  SniResult two = parse_sni(records(msg, 8192));
  CHECK(two.kind == Kind::Error);
  // One byte more is refused as soon as the handshake header says so, not at the end.
  std::string over = from_hex("160301400001003ffd");  // a record of 2^14, a 16381-byte hello
  CHECK(parse_sni(over).kind == Kind::Error);
  // Tiny records: refused once the bound is reached without a whole hello.
  std::string tiny = records(
      handshake(hello_body(sni_extension("t.io") + extension(21, std::string(4000, '\0')))), 1);
  REQUIRE(tiny.size() > kMaxClientHelloBytes);
  CHECK(parse_sni(std::string_view(tiny).substr(0, kMaxClientHelloBytes - 1)).kind ==
        Kind::NeedMore);
  CHECK(parse_sni(std::string_view(tiny).substr(0, kMaxClientHelloBytes)).kind == Kind::Error);
}

TEST_CASE("sni: garbage never crashes, and an answer never changes as more bytes arrive") {
  Random random(42);
  std::string real = from_hex(kOpensslHelloHex);
  for (int i = 0; i < 3000; ++i) {
    std::string in;
    switch (i % 3) {
      case 0:  // random bytes behind a handshake record header
        in = std::string("\x16\x03\x01", 3) + u16(random.below(400));
        for (uint64_t n = random.below(400); n > 0; --n)
          in.push_back(static_cast<char>(random.below(256)));
        break;
      default:  // a real hello with a few bytes flipped
        in = real;
        for (uint64_t n = 1 + random.below(4); n > 0; --n)
          in[random.below(in.size())] = static_cast<char>(random.below(256));
        break;
    }
    SniResult whole = parse_sni(in);
    if (whole.kind == Kind::Sni) {
      CHECK(!whole.name.empty());
      CHECK(whole.name.size() <= 255);
    }
    // Terminal answers are final: a prefix either needs more or says the same.
    for (size_t n = 0; n < in.size(); n += 1 + random.below(16)) {
      SniResult part = parse_sni(std::string_view(in).substr(0, n));
      if (part.kind == Kind::NeedMore) continue;
      INFO(i << ": prefix " << n << ": " << describe(part) << " vs " << describe(whole));
      REQUIRE(part.kind == whole.kind);
      REQUIRE(part.name == whole.name);
    }
  }
}

TEST_CASE("sni: match ranks: exact beats the longest wildcard, which beats \"*\"") {
  std::optional<std::string_view> name = "api.shop.example.com";
  CHECK(sni_match_rank("api.shop.example.com", name) == INT_MAX);
  CHECK(sni_match_rank("api.shop.example.com", std::string_view("API.Shop.Example.COM")) ==
        INT_MAX);
  int deep = sni_match_rank("*.shop.example.com", name);
  int shallow = sni_match_rank("*.example.com", name);
  CHECK(deep > shallow);
  CHECK(shallow > 0);
  CHECK(sni_match_rank("*.EXAMPLE.com", name) == shallow);  // both sides ignore case
  CHECK(sni_match_rank("*.example.com", std::string_view("a.Example.Com")) > 0);
  CHECK(sni_match_rank("*", name) == 0);
  CHECK(sni_match_rank("*", std::nullopt) == 0);  // "*" also takes hellos without a name
  CHECK(sni_match_rank("api.shop.example.com", std::nullopt) == -1);
  CHECK(sni_match_rank("*.example.com", std::nullopt) == -1);
  // A wildcard needs at least one more label; it never matches the bare suffix.
  CHECK(sni_match_rank("*.example.com", std::string_view("example.com")) == -1);
  CHECK(sni_match_rank("*.example.com", std::string_view(".example.com")) == -1);
  CHECK(sni_match_rank("*.example.com", std::string_view("badexample.com")) == -1);
  CHECK(sni_match_rank("shop.example.com", std::string_view("shop.example.co")) == -1);
}

}  // namespace
}  // namespace meshbox::data
