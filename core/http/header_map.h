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
  if (a == b) return true;  // most clients send names in lower case: one memcmp
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

/// Entries live in a vector that is never shrunk: clear() and removals keep the strings of
/// dead entries for reuse, so a connection that parses one head after another into the same
/// HeaderMap stops allocating once its headers have been seen (the request path's biggest
/// source of malloc/free).
class HeaderMap {
 public:
  using iterator = HeaderEntry*;
  using const_iterator = const HeaderEntry*;

  HeaderMap() = default;
  HeaderMap(const HeaderMap& other) { *this = other; }
  HeaderMap& operator=(const HeaderMap& other);
  HeaderMap(HeaderMap&& other) noexcept { *this = std::move(other); }
  HeaderMap& operator=(HeaderMap&& other) noexcept {
    entries_ = std::move(other.entries_);
    size_ = other.size_;
    other.entries_.clear();
    other.size_ = 0;
    return *this;
  }

  void add(std::string_view name, std::string_view value) {
    HeaderEntry& e = append_entry();
    e.name.assign(name);
    e.value.assign(value);
  }
  /// A new, empty last entry (its strings keep the capacity of earlier use). Parser use.
  HeaderEntry& append_entry() {
    if (size_ == entries_.size()) entries_.emplace_back();
    HeaderEntry& e = entries_[size_++];
    e.name.clear();
    e.value.clear();
    return e;
  }
  HeaderEntry& back() { return entries_[size_ - 1]; }
  /// Replaces every header called `name` with one header.
  void set(std::string_view name, std::string_view value);
  /// Removes every header called `name`; returns how many went.
  size_t remove(std::string_view name);
  /// The first value of `name`, or null.
  const std::string* get(std::string_view name) const;
  /// The first entry called `name`, to change in place; null if none.
  HeaderEntry* find(std::string_view name);
  bool has(std::string_view name) const { return get(name) != nullptr; }
  /// How many headers are called `name`.
  size_t count(std::string_view name) const;

  /// Removes every entry for which pred(const HeaderEntry&) is true; order is kept.
  template <typename Pred>
  void remove_if(Pred pred) {
    size_t kept = 0;
    for (size_t i = 0; i < size_; ++i) {
      if (pred(static_cast<const HeaderEntry&>(entries_[i]))) continue;
      if (kept != i) std::swap(entries_[kept], entries_[i]);  // swap: the dead keep capacity
      ++kept;
    }
    size_ = kept;
  }

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  /// Forgets every header; their storage stays for the next ones.
  void clear() { size_ = 0; }
  const_iterator begin() const { return entries_.data(); }
  const_iterator end() const { return entries_.data() + size_; }
  /// The live entries, to change in place (an empty name is not allowed).
  iterator begin() { return entries_.data(); }
  iterator end() { return entries_.data() + size_; }

 private:
  std::vector<HeaderEntry> entries_;  // [0, size_) are live
  size_t size_ = 0;
};

}  // namespace meshbox::http
