// The shipped configs: every examples/configs/*.toml validates with no finding at all, and
// every ```toml block of docs/config.md decodes (so the documented field names are real).
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>

#include "plane/config/decode.h"
#include "test/support/files.h"
#include "test/unit/plane/config/test_util.h"

namespace meshbox::config::test {
namespace {

namespace fs = std::filesystem;

std::vector<std::string> example_files() {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e :
       fs::directory_iterator(fs::path(MESHBOX_SOURCE_DIR) / "examples/configs", ec))
    if (e.path().extension() == ".toml") out.push_back(e.path().string());
  std::sort(out.begin(), out.end());
  return out;
}

TEST_CASE("examples: every examples/configs/*.toml is valid, without warnings") {
  std::vector<std::string> files = example_files();
  // minimal, bookinfo, canary, egress, security: a missing directory must fail the test.
  REQUIRE(files.size() >= 5);
  for (const auto& file : files) {
    CAPTURE(file);
    Loaded l = load({file});
    INFO(dump(l));
    CHECK(l.findings.empty());
    CHECK(l.config.mesh.defined);
  }
}

TEST_CASE("examples: bookinfo has Istio's routing") {
  Loaded l = load({std::string(MESHBOX_SOURCE_DIR) + "/examples/configs/bookinfo.toml"});
  REQUIRE(l.ok());
  const Config& c = l.config;
  CHECK(c.services.size() == 4);
  CHECK(c.workloads.size() == 6);
  auto reviews = std::find_if(c.virtual_services.begin(), c.virtual_services.end(),
                              [](const VirtualService& v) { return v.name == "reviews"; });
  REQUIRE(reviews != c.virtual_services.end());
  REQUIRE(reviews->http.size() == 2);
  CHECK(reviews->http[0].match.at(0).headers.at("end-user").value == "jason");
  CHECK(reviews->http[0].route.at(0).destination.subset == "v2");
  CHECK(reviews->http[1].route.at(0).weight == 90);
  CHECK(reviews->http[1].route.at(1).destination.subset == "v3");
  CHECK(reviews->http[1].route.at(1).weight == 10);
  CHECK(c.gateways.at(0).servers.at(0).port.number == 8080);
}

// The ```toml blocks of a Markdown file, with the line each starts on.
std::vector<std::pair<size_t, std::string>> toml_blocks(const std::string& markdown) {
  std::vector<std::pair<size_t, std::string>> out;
  size_t line = 1, pos = 0;
  std::optional<std::pair<size_t, std::string>> open;
  while (pos < markdown.size()) {
    size_t end = markdown.find('\n', pos);
    if (end == std::string::npos) end = markdown.size();
    std::string_view l = std::string_view(markdown).substr(pos, end - pos);
    if (open) {
      if (l.starts_with("```")) {
        out.push_back(*open);
        open.reset();
      } else {
        open->second += std::string(l) + "\n";
      }
    } else if (l == "```toml") {
      open.emplace(line + 1, "");
    }
    pos = end + 1;
    ++line;
  }
  return out;
}

TEST_CASE("examples: every ```toml block in docs/config.md decodes without errors") {
  std::string path = std::string(MESHBOX_SOURCE_DIR) + "/docs/config.md";
  auto markdown = meshbox::test::read_file(path);
  REQUIRE_MESSAGE(markdown, "cannot read " << path);
  auto blocks = toml_blocks(*markdown);
  REQUIRE(blocks.size() >= 10);
  for (const auto& [line, text] : blocks) {
    std::string name = path + ":" + std::to_string(line);
    CAPTURE(name);
    Decoded d = decode_string(text, name);
    std::string all;
    for (const auto& e : d.errors)
      all += format(e) + "\n";
    INFO(all);
    CHECK(d.errors.empty());
  }
}

}  // namespace
}  // namespace meshbox::config::test
