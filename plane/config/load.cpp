#include "plane/config/load.h"

#include "plane/config/decode.h"
#include "plane/config/validate.h"

namespace meshbox::config {

namespace {

Loaded finish(Decoded d) {
  Loaded l{std::move(d.config), std::move(d.errors)};
  std::vector<ConfigError> more = validate(l.config);
  l.findings.insert(l.findings.end(), std::make_move_iterator(more.begin()),
                    std::make_move_iterator(more.end()));
  sort_errors(l.findings);
  return l;
}

}  // namespace

Loaded load(const std::vector<std::string>& paths) {
  Decoded all;
  for (const auto& path : paths)
    decode_path_into(path, all.config, all.errors);
  return finish(std::move(all));
}

Loaded load_documents(const std::vector<Document>& documents) {
  Decoded all;
  for (const auto& d : documents)
    decode_document(d.text, d.name, all.config, all.errors);
  return finish(std::move(all));
}

Loaded load_string(std::string_view text, const std::string& file) {
  return finish(decode_string(text, file));
}

}  // namespace meshbox::config
