#include "plane/config/suggest.h"

#include <algorithm>
#include <cctype>
#include <vector>

namespace meshbox::config {

size_t edit_distance(std::string_view a, std::string_view b) {
  // Three rows of the dynamic-programming table: i-2, i-1 and i.
  std::vector<size_t> prev2(b.size() + 1), prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j)
    prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        cur[j] = std::min(cur[j], prev2[j - 2] + 1);
    }
    std::swap(prev2, prev);
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string snake_case(std::string_view camel) {
  std::string out;
  for (size_t i = 0; i < camel.size(); ++i) {
    auto c = static_cast<unsigned char>(camel[i]);
    bool upper = std::isupper(c) != 0;
    // A digit run starts a new word after a letter ("consecutive5xx" → "consecutive_5xx"),
    // and an upper-case letter starts one unless it follows another ("HTTPHeader" stays
    // readable enough as "httpheader": no Istio field has such a run).
    bool digit_start =
        std::isdigit(c) && i > 0 && std::isalpha(static_cast<unsigned char>(camel[i - 1]));
    if ((upper && i > 0 && !std::isupper(static_cast<unsigned char>(camel[i - 1])) &&
         camel[i - 1] != '_') ||
        digit_start)
      out += '_';
    out += static_cast<char>(std::tolower(c));
  }
  return out;
}

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

std::string closest_match(std::string_view word, std::span<const std::string> candidates) {
  if (word.empty() || candidates.empty()) return "";
  std::string snake = snake_case(word);
  std::string low = lower(word);
  for (const auto& c : candidates)
    if (c == snake || lower(c) == low) return c;
  size_t limit = word.size() <= 4 ? 1 : word.size() <= 8 ? 2 : 3;
  const std::string* best = nullptr;
  size_t best_distance = limit + 1;
  for (const auto& c : candidates) {
    // The distance is at least the difference in length: skip the work (a key can be a
    // megabyte of garbage).
    size_t longer = std::max(word.size(), c.size()), shorter = std::min(word.size(), c.size());
    if (longer - shorter > limit) continue;
    // Compare in lower case: "Weigth" is as close to "weight" as "weigth" is.
    size_t d = edit_distance(low, lower(c));
    if (d < best_distance) {
      best_distance = d;
      best = &c;
    }
  }
  return best ? *best : "";
}

std::string did_you_mean(std::string_view word, std::span<const std::string> candidates) {
  std::string m = closest_match(word, candidates);
  return m.empty() ? "" : "; did you mean '" + m + "'?";
}

}  // namespace meshbox::config
