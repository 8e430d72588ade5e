// ProductPageService: Bookinfo's front end. GET /productpage calls details and reviews at
// once (3 s budget each) and renders one HTML page from whatever came back, always with
// status 200: an upstream that fails or is late shows as a "Sorry, … currently unavailable"
// line. Also the landing page, /login and /logout (a `user` cookie that becomes the end-user
// header on upstream calls), the JSON API under /api/v1/products, /health and /static/.
// Loop thread only.
//
// Like Istio's productpage, reviews gets a second attempt when the first fails (an error or
// any status but 200), but here both attempts share the one 3 s budget, so the page never
// takes much more than 3 s (Istio's takes up to 6 s: 3 s per attempt).
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "examples/bookinfo/common/http_client.h"
#include "examples/bookinfo/common/options.h"
#include "examples/bookinfo/common/service.h"

namespace meshbox::bookinfo {

class ProductPageService : public Service {
 public:
  static constexpr uint64_t kUpstreamTimeoutMs = 3'000;
  static constexpr int kReviewsAttempts = 2;

  ProductPageService(loop::Loop& loop, HttpClient& client, const Options& opts);
  void handle(Request& req, Reply reply) override;

 private:
  using Done = std::function<void(Result<ClientResponse>)>;

  void product_page(const Request& req, Reply reply);
  void login(const Request& req, const Reply& reply);
  void logout(const Reply& reply);
  void api(const Request& req, const Reply& reply);

  /// The headers every upstream call of `req` carries: the forwarded ones, and end-user
  /// when the request's cookie names a user.
  http::HeaderMap upstream_headers(const Request& req) const;
  void fetch_details(int64_t id, http::HeaderMap headers, Done done);
  /// Up to kReviewsAttempts attempts within kUpstreamTimeoutMs from now.
  void fetch_reviews(int64_t id, http::HeaderMap headers, Done done);
  void fetch_ratings(int64_t id, http::HeaderMap headers, Done done);
  void reviews_attempt(int64_t id, http::HeaderMap headers, uint64_t deadline, int attempt,
                       Done done);

  loop::Loop& loop_;
  HttpClient& client_;
  const Upstream details_;
  const Upstream reviews_;
  const Upstream ratings_;
};

/// The logged-in user named by the request's `user` cookie, or "" (also for a value that
/// cannot go into a header).
std::string session_user(const http::HeaderMap& headers);

}  // namespace meshbox::bookinfo
