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

HeaderMap& HeaderMap::operator=(const HeaderMap& other) {
  if (this == &other) return *this;
  clear();
  for (const auto& e : other)
    add(e.name, e.value);
  return *this;
}

void HeaderMap::set(std::string_view name, std::string_view value) {
  if (HeaderEntry* first = find(name)) {
    first->value.assign(value);
    remove_if([&, first](const HeaderEntry& e) { return &e != first && iequals(e.name, name); });
    return;
  }
  add(name, value);
}

size_t HeaderMap::remove(std::string_view name) {
  size_t before = size_;
  remove_if([&](const HeaderEntry& e) { return iequals(e.name, name); });
  return before - size_;
}

const std::string* HeaderMap::get(std::string_view name) const {
  for (const auto& e : *this)
    if (iequals(e.name, name)) return &e.value;
  return nullptr;
}

HeaderEntry* HeaderMap::find(std::string_view name) {
  for (size_t i = 0; i < size_; ++i)
    if (iequals(entries_[i].name, name)) return &entries_[i];
  return nullptr;
}

size_t HeaderMap::count(std::string_view name) const {
  return std::count_if(begin(), end(), [&](const HeaderEntry& e) { return iequals(e.name, name); });
}

}  // namespace meshbox::http
