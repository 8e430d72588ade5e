#include "examples/bookinfo/ratings/ratings_service.h"

#include "core/base/json.h"
#include "examples/bookinfo/common/text.h"

namespace meshbox::bookinfo {

namespace {

constexpr size_t kMaxReviewers = 100;
constexpr size_t kMaxProducts = 1000;  // bounds the memory POSTs can take

}  // namespace

std::string RatingsService::ratings_json(int64_t id) const {
  json::Writer w;
  w.begin_object().field("id", id).key("ratings").begin_object();
  if (auto it = posted_.find(id); it != posted_.end()) {
    for (const auto& [reviewer, stars] : it->second)
      w.field(reviewer, stars);
  } else {
    w.field("Reviewer1", 5).field("Reviewer2", 4);
  }
  w.end_object().end_object();
  return w.take();
}

void RatingsService::handle(Request& req, Reply reply) {
  if (req.path == "/health") {
    reply.send(Response::json(200, R"({"status":"Ratings is healthy"})"));
    return;
  }
  if (!req.path.starts_with("/ratings/")) {
    reply.send(Response::text(404, "not found\n"));
    return;
  }
  auto id = parse_id(std::string_view(req.path).substr(sizeof("/ratings/") - 1));
  if (!id) {
    reply.send(Response::json(400, R"({"error":"please provide numeric product ID"})"));
    return;
  }
  if (req.method == "GET" || req.method == "HEAD") {
    reply.send(Response::json(200, ratings_json(*id)));
    return;
  }
  if (req.method != "POST") {
    reply.send(Response::text(405, "method not allowed\n"));
    return;
  }
  auto body = json::parse(req.body);
  Ratings ratings;
  bool valid = body && body->is_object() && body->object.size() <= kMaxReviewers;
  if (valid) {
    for (const auto& [reviewer, stars] : body->object) {
      auto n = stars.as_int();
      if (!n) {
        valid = false;
        break;
      }
      ratings.emplace_back(reviewer, *n);
    }
  }
  if (!valid) {
    reply.send(Response::json(400, R"({"error":"please provide valid ratings JSON"})"));
    return;
  }
  if (posted_.size() >= kMaxProducts && !posted_.contains(*id)) {
    reply.send(Response::json(507, R"({"error":"too many products rated"})"));
    return;
  }
  posted_[*id] = std::move(ratings);
  reply.send(Response::json(200, ratings_json(*id)));
}

}  // namespace meshbox::bookinfo
