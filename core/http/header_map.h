// HeaderMap: an HTTP header block in arrival order. Names keep their case on the wire and
// compare case-insensitively. Duplicates are kept (Set-Cookie). A plain value type; it
// belongs to whoever holds the message.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace meshbox::http {

/// ASCII lower case of one byte.
inline char ascii_lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c | 0x20) : c;
}

/// ASCII case-insensitive equality (header names, tokens). Inline: it runs for every header of
/// every request, mostly against names of a different length.
inline bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
  return true;
}
/// True if the comma-separated list `list` contains `token` (case-insensitive, OWS trimmed).
bool has_token(std::string_view list, std::string_view token);

struct HeaderEntry {
  std::string name;
  std::string value;
};

class HeaderMap {
 public:
  using const_iterator = std::vector<HeaderEntry>::const_iterator;

  HeaderMap() = default;
  void reserve(size_t n) { entries_.reserve(n); }

  void add(std::string_view name, std::string_view value) {
    entries_.push_back({std::string(name), std::string(value)});
  }
  /// Replaces every header called `name` with one header.
  void set(std::string_view name, std::string_view value);
  /// Removes every header called `name`; returns how many went.
  size_t remove(std::string_view name);
  /// The first value of `name`, or null.
  const std::string* get(std::string_view name) const;
  bool has(std::string_view name) const { return get(name) != nullptr; }
  /// How many headers are called `name`.
  size_t count(std::string_view name) const;

  template <typename Pred>
  void remove_if(Pred pred) {
    std::erase_if(entries_, pred);
  }

  size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }
  void clear() { entries_.clear(); }
  const_iterator begin() const { return entries_.begin(); }
  const_iterator end() const { return entries_.end(); }
  /// Parser use: the entry being filled in.
  std::vector<HeaderEntry>& entries() { return entries_; }

 private:
  std::vector<HeaderEntry> entries_;
};

}  // namespace meshbox::http
