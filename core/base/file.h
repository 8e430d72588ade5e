// Writing a small file so that no reader ever sees it half written: ready files that tests
// and scripts poll, keys and similar one-shot outputs; and creating private directories.
// Blocking file I/O: for start-up and shutdown paths, never a loop's request path.
#pragma once

#include <string>
#include <string_view>

#include "core/base/result.h"

namespace meshbox {

/// Writes `content` to PATH.tmp, then renames it to `path` (an atomic replace on POSIX).
/// On failure the temporary file is removed and the error names the file.
Status write_file_atomic(const std::string& path, const std::string& content);

/// The same for files whose mode matters (private keys: 0600): PATH.tmp is created with
/// exactly `mode` (the umask does not narrow it, a stale PATH.tmp does not keep a wider one)
/// before a byte is written, and is flushed to disk before the rename.
Status write_file_atomic(const std::string& path, std::string_view content, unsigned mode);

/// mkdir -p, each directory it creates getting exactly `mode` (default 0700: state that is
/// this user's only). Existing directories keep their mode.
Status make_dirs(const std::string& dir, unsigned mode = 0700);

}  // namespace meshbox
