// format_table(): kubectl-style plain-text tables for `meshbox get` and friends. A pure
// function.
#pragma once

#include <string>
#include <vector>

namespace meshbox::cli {

/// The header line upper-cased, then one line per row. Columns are left-aligned and padded to
/// their widest cell plus 3 spaces; widths count UTF-8 code points, not bytes (names may hold
/// any). No line has trailing spaces, every line ends with '\n', and no rows gives the header
/// line alone. A row shorter than the header gets empty cells; cells past the header's
/// columns are printed too, in columns of their own.
std::string format_table(const std::vector<std::string>& header,
                         const std::vector<std::vector<std::string>>& rows);

}  // namespace meshbox::cli
