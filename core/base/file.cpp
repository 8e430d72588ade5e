#include "core/base/file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace meshbox {

namespace {
Status io_error(const std::string& path, std::string_view what, int err) {
  return make_error(Code::Io, path + ": " + std::string(what) + ": " + std::strerror(err));
}
}  // namespace

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

Status write_file_atomic(const std::string& path, std::string_view content, unsigned mode) {
  std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
                  static_cast<mode_t>(mode));
  if (fd < 0) return io_error(tmp, "cannot create", errno);
  // fchmod before the first byte: O_CREAT applied the umask, and a stale file kept its mode.
  int err = ::fchmod(fd, static_cast<mode_t>(mode)) == 0 ? 0 : errno;
  for (size_t done = 0; err == 0 && done < content.size();) {
    ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) err = errno;
    if (n > 0) done += static_cast<size_t>(n);
  }
  if (err == 0 && ::fsync(fd) != 0) err = errno;
  if (::close(fd) != 0 && err == 0) err = errno;
  if (err == 0 && std::rename(tmp.c_str(), path.c_str()) != 0) err = errno;
  if (err != 0) {
    ::unlink(tmp.c_str());
    return io_error(path, "cannot write", err);
  }
  return Status::ok();
}

Status make_dirs(const std::string& dir, unsigned mode) {
  if (dir.empty()) return make_error(Code::InvalidArgument, "the directory name is \"\"");
  for (size_t i = 1; i <= dir.size(); ++i) {
    if (i < dir.size() && dir[i] != '/') continue;
    std::string prefix = dir.substr(0, i);
    if (prefix.back() == '/') continue;  // "a//b"
    if (::mkdir(prefix.c_str(), static_cast<mode_t>(mode)) == 0) {
      // mkdir's mode went through the umask.
      if (::chmod(prefix.c_str(), static_cast<mode_t>(mode)) != 0)
        return io_error(prefix, "chmod", errno);
      continue;
    }
    if (errno != EEXIST) return io_error(prefix, "cannot create the directory", errno);
    struct stat st {};
    if (::stat(prefix.c_str(), &st) != 0) return io_error(prefix, "stat", errno);
    if (!S_ISDIR(st.st_mode))
      return make_error(Code::InvalidArgument, prefix + ": exists and is not a directory");
  }
  return Status::ok();
}

}  // namespace meshbox
