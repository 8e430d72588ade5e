#include "examples/httpbin/options.h"

#include <optional>

namespace meshbox::httpbin {

std::string_view usage() {
  return "usage: meshbox-httpbin --listen HOST:PORT [--name NAME] [--ready-file PATH]\n"
         "                       [--log-level LEVEL]\n"
         "\n"
         "A small HTTP/1.1 test backend (see examples/httpbin/README.md).\n"
         "\n"
         "  --listen HOST:PORT   address to listen on; port 0 picks a free port\n"
         "  --name NAME          reported in x-backend-name and by GET / (default: httpbin)\n"
         "  --ready-file PATH    once listening, write the bound HOST:PORT to PATH\n"
         "                       (atomically: PATH.tmp, then rename)\n"
         "  --log-level LEVEL    trace, debug, info, warn, error or off (default: info)\n"
         "  --help               print this text and exit\n";
}

Result<Options> parse_options(int argc, char** argv) {
  Options opts;
  bool have_listen = false;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      opts.help = true;
      return opts;
    }
    std::string_view flag = arg;
    std::optional<std::string_view> value;
    if (size_t eq = arg.find('='); arg.starts_with("--") && eq != std::string_view::npos) {
      flag = arg.substr(0, eq);
      value = arg.substr(eq + 1);
    }
    if (flag != "--listen" && flag != "--name" && flag != "--ready-file" && flag != "--log-level")
      return make_error(Code::InvalidArgument, "unknown flag '" + std::string(arg) + "'");
    if (!value) {
      if (i + 1 >= argc)
        return make_error(Code::InvalidArgument, std::string(flag) + " needs a value");
      value = argv[++i];
    }
    if (flag == "--listen") {
      auto addr = loop::Address::parse(*value);
      if (!addr) return make_error(Code::InvalidArgument, "--listen: " + addr.error().message());
      opts.listen = *addr;
      have_listen = true;
    } else if (flag == "--name") {
      if (value->empty()) return make_error(Code::InvalidArgument, "--name must not be empty");
      // The name goes into a header value: keep it to visible ASCII.
      for (char c : *value)
        if (c <= 0x20 || c >= 0x7f)
          return make_error(Code::InvalidArgument, "--name must be printable ASCII without spaces");
      opts.name = std::string(*value);
    } else if (flag == "--ready-file") {
      if (value->empty())
        return make_error(Code::InvalidArgument, "--ready-file must not be empty");
      opts.ready_file = std::string(*value);
    } else {
      auto level = log::parse_level(*value);
      if (!level)
        return make_error(Code::InvalidArgument,
                          "--log-level: unknown level '" + std::string(*value) + "'");
      opts.log_level = *level;
    }
  }
  if (!have_listen) return make_error(Code::InvalidArgument, "--listen HOST:PORT is required");
  return opts;
}

}  // namespace meshbox::httpbin
