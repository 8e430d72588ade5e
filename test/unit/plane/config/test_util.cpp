#include "test/unit/plane/config/test_util.h"

#include <fstream>
#include <stdexcept>

namespace meshbox::config::test {

std::string write_file(const TempDir& dir, const std::string& name, std::string_view text) {
  std::string path = dir.file(name);
  std::ofstream out(path, std::ios::binary);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  if (!out) throw std::runtime_error("cannot write " + path);
  return path;
}

LoadedFile::LoadedFile(std::string_view text, const std::string& name)
    : path(write_file(dir, name, text)), loaded(load({path})) {}

// A prvalue: TempDir is neither copied nor moved.
LoadedFile load_toml(std::string_view text, const std::string& name) {
  return {text, name};
}

Pos locate(std::string_view text, std::string_view needle, size_t nth) {
  size_t at = text.find(needle);
  for (size_t i = 0; i < nth && at != std::string_view::npos; ++i)
    at = text.find(needle, at + 1);
  if (at == std::string_view::npos) return {};
  Pos p{1, 1};
  for (size_t i = 0; i < at; ++i) {
    if (text[i] == '\n') {
      ++p.line;
      p.column = 1;
    } else {
      ++p.column;
    }
  }
  return p;
}

std::vector<ConfigError> findings_at(const Loaded& l, std::string_view field, std::string_view kind,
                                     std::string_view name) {
  std::vector<ConfigError> out;
  for (const auto& f : l.findings)
    if (f.field == field && (kind.empty() || f.kind == kind) && (name.empty() || f.name == name))
      out.push_back(f);
  return out;
}

std::string dump(const Loaded& l) {
  std::string out = "findings:\n";
  for (const auto& f : l.findings)
    out += "  " + format(f) + "\n";
  return out;
}

}  // namespace meshbox::config::test
