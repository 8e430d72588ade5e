#include "cli/table.h"

#include <algorithm>

namespace meshbox::cli {

namespace {

constexpr size_t kGap = 3;  // kubectl's column gap (text/tabwriter padding 3)

/// UTF-8 code points: every byte but continuation bytes (10xxxxxx) starts one. Wide (CJK)
/// and combining characters are not measured; names in a mesh rarely have them.
size_t width(const std::string& s) {
  return static_cast<size_t>(std::count_if(
      s.begin(), s.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
}

std::string upper(std::string s) {
  for (char& c : s)
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  return s;
}

void append_line(const std::vector<std::string>& cells, const std::vector<size_t>& widths,
                 std::string& out) {
  size_t start = out.size();
  for (size_t i = 0; i < widths.size(); ++i) {
    const std::string* cell = i < cells.size() ? &cells[i] : nullptr;
    if (cell) out.append(*cell);
    if (i + 1 < widths.size()) out.append(widths[i] + kGap - (cell ? width(*cell) : 0), ' ');
  }
  // Empty cells at the end of the line would leave padding behind.
  size_t end = out.find_last_not_of(' ');
  out.resize(end == std::string::npos || end < start ? start : end + 1);
  out.push_back('\n');
}

}  // namespace

std::string format_table(const std::vector<std::string>& header,
                         const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::string> head;
  head.reserve(header.size());
  for (const auto& h : header)
    head.push_back(upper(h));
  size_t columns = head.size();
  for (const auto& row : rows)
    columns = std::max(columns, row.size());
  std::vector<size_t> widths(columns, 0);
  auto measure = [&](const std::vector<std::string>& cells) {
    for (size_t i = 0; i < cells.size(); ++i)
      widths[i] = std::max(widths[i], width(cells[i]));
  };
  measure(head);
  for (const auto& row : rows)
    measure(row);

  std::string out;
  append_line(head, widths, out);
  for (const auto& row : rows)
    append_line(row, widths, out);
  return out;
}

}  // namespace meshbox::cli
