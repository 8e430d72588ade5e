#include "test/unit/plane/control/compiler_test_util.h"

#include <doctest/doctest.h>

#include <string>

#include "plane/config/error.h"
#include "plane/config/load.h"

namespace meshbox::control::testutil {

config::Config load(std::string_view toml) {
  config::Loaded loaded = config::load_string(toml);
  std::string findings;
  for (const auto& f : loaded.findings)
    findings += config::format(f) + "\n";
  INFO(findings);
  REQUIRE(loaded.ok());
  return std::move(loaded.config);
}

const ListenerSpec& listener(const Snapshot& s, std::string_view name) {
  for (const auto& l : s.listeners)
    if (l.name == name) return l;
  INFO("listener " << name);
  FAIL("no such listener");
  static ListenerSpec none;
  return none;
}

}  // namespace meshbox::control::testutil
