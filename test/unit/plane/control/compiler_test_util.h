// What the compiler tests (compiler*_test.cpp) share: a config from TOML text that must load
// clean, and a listener of a snapshot by name.
#pragma once

#include <string_view>

#include "plane/config/resources.h"
#include "plane/snapshot.h"

namespace meshbox::control::testutil {

/// The config of `toml`; fails the test (listing the findings) if it has errors.
config::Config load(std::string_view toml);

/// The listener called `name`; fails the test if there is none.
const ListenerSpec& listener(const Snapshot& s, std::string_view name);

}  // namespace meshbox::control::testutil
