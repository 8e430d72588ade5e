// No input crashes decoding or validation: random bytes, TOML-looking noise, deep nesting,
// huge numbers and strings, and every value of the example configs replaced by values of
// every other type. Randomness is seeded, so a failure replays. Run under ASan+UBSan too.
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <random>

#include "plane/config/decode.h"
#include "plane/config/validate.h"
#include "test/support/files.h"
#include "test/unit/plane/config/test_util.h"

namespace meshbox::config::test {
namespace {

// Decodes and validates `text`; checks that every finding is well formed.
Loaded check_no_crash(std::string_view text) {
  Loaded l = load_string(text, "fuzz.toml");
  size_t lines = static_cast<size_t>(std::count(text.begin(), text.end(), '\n')) + 1;
  for (const auto& e : l.findings) {
    CHECK(e.file == "fuzz.toml");
    CHECK(e.line <= lines);
    CHECK_FALSE(e.message.empty());
    std::string line = format(e);
    CHECK(line.find('\n') == std::string::npos);
    CHECK(line.size() < 2000);  // nothing echoes a megabyte of input
  }
  (void)to_json(l.findings);
  return l;
}

TEST_CASE("robustness: random bytes") {
  std::mt19937 rng(20240611);
  std::uniform_int_distribution<int> byte(0, 255), len(0, 2000);
  for (int i = 0; i < 300; ++i) {
    std::string text(static_cast<size_t>(len(rng)), '\0');
    for (char& c : text)
      c = static_cast<char>(byte(rng));
    CAPTURE(i);
    check_no_crash(text);
  }
}

TEST_CASE("robustness: TOML-looking noise") {
  // Pieces of the real schema glued at random: often valid TOML, rarely a valid config.
  const std::vector<std::string> pieces = {
      "[[service]]\n",
      "[[workload]]\n",
      "[[virtual_service]]\n",
      "[[virtual_service.http]]\n",
      "[[destination_rule]]\n",
      "[[gateway]]\n",
      "[[service_entry]]\n",
      "[mesh]\n",
      "[[authorization_policy]]\n",
      "[[authorization_policy.rules]]\n",
      "name = \"a\"\n",
      "name = \"b\"\n",
      "port = 80\n",
      "hosts = [\"a\"]\n",
      "host = \"a\"\n",
      "route = [{ destination = { host = \"a\", subset = \"v1\" }, weight = 50 }]\n",
      "match = [{ uri = { regex = \"(\" } }]\n",
      "subsets = [{ name = \"v1\" }]\n",
      "service = \"a\"\n",
      "servers = [{ port = 80, protocol = \"http\", hosts = [\"*\"] }]\n",
      "timeout = \"1s\"\n",
      "http = [{}]\n",
      "tcp = [{}]\n",
      "tls = [{ match = [{}] }]\n",
      "labels = { version = \"v1\" }\n",
      "command = [\"x\"]\n",
      "= 1\n",
      "[\n",
      "]\n",
      "{",
      "}",
      "\"",
      "\n",
      "a.b.c = 1\n",
      "traffic_policy.load_balancer = \"random\"\n",
      "endpoints = [{ address = \"10.0.0.1\" }]\n",
      "resolution = \"static\"\n",
      "rules = [{ when = [{ key = \"source.ip\" }] }]\n",
      "jwt_rules = [{ issuer = \"i\" }]\n",
  };
  std::mt19937 rng(7);
  std::uniform_int_distribution<size_t> pick(0, pieces.size() - 1), count(1, 40);
  for (int i = 0; i < 1500; ++i) {
    std::string text;
    for (size_t n = count(rng); n > 0; --n)
      text += pieces[pick(rng)];
    CAPTURE(text);
    check_no_crash(text);
  }
}

TEST_CASE("robustness: deep nesting") {
  for (size_t depth : {100u, 1000u, 100000u}) {
    CAPTURE(depth);
    check_no_crash("x = " + std::string(depth, '[') + std::string(depth, ']') + "\n");
    std::string inline_tables = "x = ";
    for (size_t i = 0; i < depth; ++i)
      inline_tables += "{ a = ";
    inline_tables += "1" + std::string(depth, '}') + "\n";
    check_no_crash(inline_tables);
    std::string dotted = "[[virtual_service]]\nname = \"v\"\nhosts = [\"v\"]\nhttp";
    for (size_t i = 0; i < std::min<size_t>(depth, 5000); ++i)
      dotted += ".a";
    check_no_crash(dotted + " = 1\n");
    // Deep nesting where the schema expects a string match.
    check_no_crash(
        "[[virtual_service]]\nname = \"v\"\nhosts = [\"v\"]\nhttp = [{ match = [{ "
        "uri = " +
        std::string(depth, '[') + std::string(depth, ']') + " }] }]\n");
  }
}

TEST_CASE("robustness: huge and odd numbers") {
  const char* values[] = {
      "99999999999999999999",
      "9223372036854775807",
      "-9223372036854775808",
      "1e308",
      "-1e308",
      "inf",
      "-inf",
      "nan",
      "0x7fffffffffffffff",
      "0o777",
      "0b1",
      "1_000",
      "-0",
      "0.0",
      "1e-320",
  };
  const char* fields[] = {
      "[[service]]\nname = \"a\"\nport = {}\n",
      "[[service]]\nname = \"a\"\nport = 80\n[[virtual_service]]\nname = \"v\"\nhosts = [\"a\"]\n"
      "http = [{ route = [{ destination = { host = \"a\" }, weight = {} }], mirror = { host = "
      "\"a\" }, mirror_percentage = {} }]\n",
      "[[destination_rule]]\nname = \"d\"\nhost = \"a\"\ntraffic_policy = { connection_pool = { "
      "tcp = { max_connections = {} } }, outlier_detection = { max_ejection_percent = {} } }\n",
      "[mesh]\ntracing_sampling = {}\n",
      "[[peer_authentication]]\nname = \"p\"\nselector = { match_labels = { a = \"b\" } }\n"
      "port_level_mtls = { {} = { mode = \"strict\" } }\n",
  };
  for (const char* field : fields) {
    for (const char* value : values) {
      std::string text = field;
      size_t at;
      while ((at = text.find("{}")) != std::string::npos)
        text.replace(at, 2, value);
      CAPTURE(text);
      check_no_crash(text);
    }
  }
  Loaded l = check_no_crash("[[service]]\nname = \"a\"\nport = 9223372036854775807\n");
  CHECK_FALSE(l.ok());
  l = check_no_crash("[mesh]\ntracing_sampling = inf\n");
  CHECK_FALSE(l.ok());
}

TEST_CASE("robustness: long strings and many resources") {
  std::string big(1 << 20, 'a');
  check_no_crash("[[service]]\nname = \"" + big + "\"\nport = 80\n");
  check_no_crash("[[service]]\n" + big + " = 1\n");
  check_no_crash("[[virtual_service]]\nname = \"v\"\nhosts = [\"" + big +
                 "\"]\nhttp = [{ match = [{ uri = { regex = \"" + big +
                 "\" } }], route = [{ destination = { host = \"" + big + "\" } }] }]\n");
  check_no_crash("[[workload]]\nservice = \"s\"\nport = 1\nhealth = { tcp = true, interval = \"" +
                 std::string(100000, '9') + "s\" }\n");

  std::string many;
  for (int i = 0; i < 2000; ++i) {
    many += "[[service]]\nname = \"s" + std::to_string(i) + "\"\nport = 80\n";
    many += "[[workload]]\nservice = \"s" + std::to_string(i) +
            "\"\nport = " + std::to_string(10000 + i) + "\n";
    many += "[[destination_rule]]\nname = \"s" + std::to_string(i) + "\"\nhost = \"s" +
            std::to_string(i) + "\"\nsubsets = [{ name = \"v1\" }]\n";
    many += "[[virtual_service]]\nname = \"s" + std::to_string(i) + "\"\nhosts = [\"s" +
            std::to_string(i) + "\"]\nhttp = [{ route = [{ destination = { host = \"s" +
            std::to_string(i) + "\", subset = \"v1\" } }] }]\n";
  }
  Loaded l = check_no_crash(many);
  INFO(dump(l));
  CHECK(l.findings.empty());
  CHECK(l.config.virtual_services.size() == 2000);
}

// Every scalar value of every example config, replaced in turn by values of every type.
TEST_CASE("robustness: wrong types everywhere in the examples") {
  const char* replacements[] = {
      "1",
      "-1",
      "1.5",
      "true",
      "\"x\"",
      "\"\"",
      "[]",
      "[1, \"a\"]",
      "{}",
      "{ a = 1 }",
      "1979-05-27T07:32:00Z",
      "07:32:00",
      "nan",
      "[[]]",
      "[{}]",
  };
  std::vector<std::string> files;
  for (const auto& e :
       std::filesystem::directory_iterator(std::string(MESHBOX_SOURCE_DIR) + "/examples/configs"))
    if (e.path().extension() == ".toml") files.push_back(e.path().string());
  std::sort(files.begin(), files.end());
  REQUIRE_FALSE(files.empty());
  size_t mutations = 0;
  for (const auto& file : files) {
    std::string text = meshbox::test::read_file(file).value();
    // Each "= VALUE" whose value is a string, number or boolean (not a table or an array).
    for (size_t at = text.find("= "); at != std::string::npos; at = text.find("= ", at + 1)) {
      size_t start = at + 2;
      if (start >= text.size()) break;
      char c = text[start];
      size_t end;
      if (c == '"') {
        end = text.find('"', start + 1);
        if (end == std::string::npos) continue;
        ++end;
      } else if ((c >= '0' && c <= '9') || c == 't' || c == 'f') {
        end = text.find_first_of(",}\n ", start);
      } else {
        continue;
      }
      for (const char* r : replacements) {
        std::string mutated = text.substr(0, start) + r + text.substr(end);
        CAPTURE(file);
        CAPTURE(mutated.substr(start > 80 ? start - 80 : 0, 160));
        check_no_crash(mutated);
        ++mutations;
      }
    }
  }
  CHECK(mutations > 1000);
}

}  // namespace
}  // namespace meshbox::config::test
