#include "examples/bookinfo/reviews/reviews_service.h"

#include "core/base/json.h"
#include "core/base/log.h"
#include "examples/bookinfo/common/forward_headers.h"
#include "examples/bookinfo/common/text.h"

namespace meshbox::bookinfo {

namespace {

constexpr std::string_view kReviewer1Text =
    "An extremely entertaining play by Shakespeare. The slapstick humour is refreshing!";
constexpr std::string_view kReviewer2Text =
    "Absolutely fun and entertaining. The play lacks thematic depth when compared to other "
    "plays by Shakespeare.";
constexpr std::string_view kRatingsUnavailable = "Ratings service is currently unavailable";

// The stars of `reviewer` in a ratings response, if it has a whole number for them.
std::optional<int64_t> stars_of(const json::Value& ratings, std::string_view reviewer) {
  const json::Value* v = ratings.get(reviewer);
  if (!v) return std::nullopt;
  return v->as_int();
}

}  // namespace

ReviewsService::ReviewsService(HttpClient& client, const Options& opts)
    : client_(client),
      version_(opts.version),
      name_(opts.name),
      cluster_name_(opts.cluster_name),
      ratings_(opts.upstream("ratings")),
      color_(opts.version == "v3" ? "red" : "black"),
      ratings_timeout_ms_(opts.version == "v3" ? 2'500 : 10'000) {}

void ReviewsService::handle(Request& req, Reply reply) {
  if (req.method != "GET" && req.method != "HEAD") {
    reply.send(Response::text(405, "method not allowed\n"));
    return;
  }
  if (req.path == "/health") {
    reply.send(Response::json(200, R"({"status":"Reviews is healthy"})"));
    return;
  }
  if (!req.path.starts_with("/reviews/")) {
    reply.send(Response::text(404, "not found\n"));
    return;
  }
  auto id = parse_id(std::string_view(req.path).substr(sizeof("/reviews/") - 1));
  if (!id) {
    reply.send(Response::json(400, R"({"error":"please provide numeric product id"})"));
    return;
  }
  if (version_ == "v1") {
    reply.send(Response::json(200, reviews_json(*id, nullptr)));
    return;
  }
  reply_with_ratings(req, *id, std::move(reply));
}

void ReviewsService::reply_with_ratings(const Request& req, int64_t id, Reply reply) {
  ClientRequest call;
  call.upstream = ratings_;
  call.path = "/ratings/" + std::to_string(id);
  copy_forwarded_headers(req.headers, call.headers);
  call.headers.add("accept", "application/json");
  call.timeout_ms = ratings_timeout_ms_;
  client_.send(std::move(call), [this, id, reply](Result<ClientResponse> r) {
    Stars stars;
    if (!r) {
      MB_LOG_EVERY(5, Warn, "reviews", "ratings: {}", r.error().message());
    } else if (r->status != 200) {
      MB_LOG_EVERY(5, Warn, "reviews", "ratings answered {}", r->status);
    } else if (auto body = json::parse(r->body); !body) {
      MB_LOG_EVERY(5, Warn, "reviews", "ratings: bad JSON: {}", body.error().message());
    } else if (const json::Value* ratings = body->get("ratings"); ratings) {
      stars.reviewer1 = stars_of(*ratings, "Reviewer1");
      stars.reviewer2 = stars_of(*ratings, "Reviewer2");
    }
    reply.send(Response::json(200, reviews_json(id, &stars)));
  });
}

std::string ReviewsService::reviews_json(int64_t id, const Stars* stars) const {
  json::Writer w;
  w.begin_object()
      .field("id", std::to_string(id))
      .field("podname", name_)
      .field("clustername", cluster_name_)
      .key("reviews")
      .begin_array();
  auto review = [&](std::string_view reviewer, std::string_view text,
                    const std::optional<int64_t>* rating) {
    w.begin_object().field("reviewer", reviewer).field("text", text);
    if (rating) {
      w.key("rating").begin_object();
      if (*rating)
        w.field("stars", **rating).field("color", color_);
      else
        w.field("error", kRatingsUnavailable);
      w.end_object();
    }
    w.end_object();
  };
  review("Reviewer1", kReviewer1Text, stars ? &stars->reviewer1 : nullptr);
  review("Reviewer2", kReviewer2Text, stars ? &stars->reviewer2 : nullptr);
  w.end_array().end_object();
  return w.take();
}

}  // namespace meshbox::bookinfo
