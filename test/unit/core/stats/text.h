// Test helper: the sample lines of a Prometheus text exposition, looked up by series.
#pragma once

#include <map>
#include <sstream>
#include <string>

namespace meshbox::stats::test {

class Text {
 public:
  explicit Text(const std::string& text) {
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
      if (line.empty() || line[0] == '#') continue;
      size_t space = line.rfind(' ');
      samples_[line.substr(0, space)] = line.substr(space + 1);
    }
  }
  /// The value of `series` (name and labels exactly as printed), or "missing".
  std::string value(const std::string& series) const {
    auto it = samples_.find(series);
    return it == samples_.end() ? "missing" : it->second;
  }
  size_t size() const { return samples_.size(); }

 private:
  std::map<std::string, std::string> samples_;
};

}  // namespace meshbox::stats::test
