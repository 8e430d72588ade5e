#include "core/http/header_map.h"

#include <algorithm>

namespace meshbox::http {

namespace {
inline bool ows(char c) {
  return c == ' ' || c == '\t';
}
}  // namespace

bool has_token(std::string_view list, std::string_view token) {
  while (!list.empty()) {
    size_t comma = list.find(',');
    std::string_view item = list.substr(0, comma);
    while (!item.empty() && ows(item.front()))
      item.remove_prefix(1);
    while (!item.empty() && ows(item.back()))
      item.remove_suffix(1);
    if (iequals(item, token)) return true;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

void HeaderMap::set(std::string_view name, std::string_view value) {
  for (auto it = entries_.begin(); it != entries_.end(); ++it) {
    if (iequals(it->name, name)) {
      it->value.assign(value);
      entries_.erase(std::remove_if(it + 1, entries_.end(),
                                    [&](const HeaderEntry& e) { return iequals(e.name, name); }),
                     entries_.end());
      return;
    }
  }
  add(name, value);
}

size_t HeaderMap::remove(std::string_view name) {
  return std::erase_if(entries_, [&](const HeaderEntry& e) { return iequals(e.name, name); });
}

const std::string* HeaderMap::get(std::string_view name) const {
  for (const auto& e : entries_)
    if (iequals(e.name, name)) return &e.value;
  return nullptr;
}

size_t HeaderMap::count(std::string_view name) const {
  return std::count_if(entries_.begin(), entries_.end(),
                       [&](const HeaderEntry& e) { return iequals(e.name, name); });
}

}  // namespace meshbox::http
