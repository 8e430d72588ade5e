#include "examples/bookinfo/details/details_service.h"

#include "core/base/json.h"
#include "examples/bookinfo/common/text.h"

namespace meshbox::bookinfo {

std::string details_json(int64_t id) {
  json::Writer w;
  w.begin_object()
      .field("id", id)
      .field("author", "William Shakespeare")
      .field("year", 1595)
      .field("type", "paperback")
      .field("pages", 200)
      .field("publisher", "PublisherA")
      .field("language", "English")
      .field("ISBN-10", "1234567890")
      .field("ISBN-13", "123-1234567890")
      .end_object();
  return w.take();
}

void DetailsService::handle(Request& req, Reply reply) {
  if (req.method != "GET" && req.method != "HEAD") {
    reply.send(Response::text(405, "method not allowed\n"));
    return;
  }
  if (req.path == "/health") {
    reply.send(Response::json(200, R"({"status":"Details is healthy"})"));
    return;
  }
  // Like the sample: any path under /details, the last segment being the id.
  if (req.path == "/details" || req.path.starts_with("/details/")) {
    std::string_view last = req.path;
    last = last.substr(last.rfind('/') + 1);
    auto id = parse_id(last);
    if (!id) {
      reply.send(Response::json(400, R"({"error":"please provide numeric product id"})"));
      return;
    }
    reply.send(Response::json(200, details_json(*id)));
    return;
  }
  reply.send(Response::text(404, "not found\n"));
}

}  // namespace meshbox::bookinfo
