#include "test/support/files.h"

#include <stdlib.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace meshbox::test {

TempDir::TempDir() {
  const char* base = ::getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/meshbox-integ-XXXXXX";
  if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed for " + tmpl);
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::optional<std::string> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<std::string> file_lines(const std::string& path, bool skip_empty) {
  std::vector<std::string> out;
  std::istringstream in(read_file(path).value_or(""));
  for (std::string line; std::getline(in, line);)
    if (!skip_empty || !line.empty()) out.push_back(line);
  return out;
}

std::string read_file_tail(const std::string& path, size_t max_bytes) {
  auto text = read_file(path);
  if (!text) return "";
  if (text->size() <= max_bytes) return *text;
  return "[...]" + text->substr(text->size() - max_bytes);
}

}  // namespace meshbox::test
