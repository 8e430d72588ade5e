// Writing a small file so that no reader ever sees it half written: ready files that tests
// and scripts poll, and similar one-shot outputs. Blocking file I/O: for start-up and
// shutdown paths, never a loop's request path.
#pragma once

#include <string>

#include "core/base/result.h"

namespace meshbox {

/// Writes `content` to PATH.tmp, then renames it to `path` (an atomic replace on POSIX).
/// On failure the temporary file is removed and the error names the file.
Status write_file_atomic(const std::string& path, const std::string& content);

}  // namespace meshbox
