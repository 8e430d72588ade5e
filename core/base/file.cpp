#include "core/base/file.h"

#include <cstdio>

namespace meshbox {

Status write_file_atomic(const std::string& path, const std::string& content) {
  std::string tmp = path + ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "w");
  if (!f) return make_error(Code::Io, "cannot create " + tmp);
  bool ok = std::fwrite(content.data(), 1, content.size(), f) == content.size();
  ok = (std::fclose(f) == 0) && ok;
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    return make_error(Code::Io, "cannot write " + path);
  }
  return Status::ok();
}

}  // namespace meshbox
