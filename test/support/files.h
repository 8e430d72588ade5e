// Files for integration tests: a temp directory removed with everything in it when the test
// ends, and whole-file reads. Single-threaded use.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace meshbox::test {

/// A fresh directory under $TMPDIR (or /tmp), deleted recursively by the destructor.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  /// path()/name.
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

/// The whole file, or nullopt if it cannot be opened.
std::optional<std::string> read_file(const std::string& path);
/// The file's lines (none if it cannot be opened); empty ones too unless `skip_empty`.
std::vector<std::string> file_lines(const std::string& path, bool skip_empty = false);
/// The last `max_bytes` of a file ("" if missing): for log excerpts in failure messages.
std::string read_file_tail(const std::string& path, size_t max_bytes = 8192);

}  // namespace meshbox::test
