#include "examples/bookinfo/productpage/productpage_service.h"

#include <fmt/core.h>

#include <memory>
#include <optional>

#include "core/base/json.h"
#include "core/base/log.h"
#include "examples/bookinfo/common/forward_headers.h"
#include "examples/bookinfo/common/text.h"
#include "examples/bookinfo/productpage/page.h"

namespace meshbox::bookinfo {

namespace {

constexpr size_t kMaxUserName = 256;
constexpr uint64_t kMinRetryBudgetMs = 50;  // a retry with less time left is not worth it

std::string error_json(std::string_view message) {
  json::Writer w;
  w.begin_object().field("error", message).end_object();
  return w.take();
}

// An API answer: the upstream's body on 200; otherwise its status (500 when there was no
// answer at all) with `sorry` as the error, as Istio's productpage does.
Response api_response(const Result<ClientResponse>& r, std::string_view sorry) {
  if (r && r->status == 200) return Response::json(200, r->body);
  return Response::json(r ? r->status : 500, error_json(sorry));
}

Response redirect_to_product_page(std::string_view cookie) {
  Response r = Response::text(302, "");
  r.content_type.clear();
  r.headers.add("location", "/productpage");
  r.headers.add("set-cookie", cookie);
  return r;
}

bool is_get(const Request& req) {
  return req.method == "GET" || req.method == "HEAD";
}

Response method_not_allowed(std::string_view allow) {
  Response r = Response::text(405, "method not allowed\n");
  r.headers.add("allow", allow);
  return r;
}

void log_failure(std::string_view what, const Result<ClientResponse>& r) {
  if (!r)
    MB_LOG_EVERY(5, Warn, "productpage", "{}: {}", what, r.error().message());
  else if (r->status != 200)
    MB_LOG_EVERY(5, Warn, "productpage", "{} answered {}", what, r->status);
}

// Joins the two calls of one /productpage: renders once both have answered.
struct PageFetch {
  Reply reply;
  std::string user;
  std::optional<Result<ClientResponse>> details, reviews;

  void maybe_render() {
    if (!details || !reviews) return;
    PageView view;
    view.user = user;
    view.details = *details ? details_view((*details)->status, (*details)->body) : DetailsView{};
    view.reviews = *reviews ? reviews_view((*reviews)->status, (*reviews)->body) : ReviewsView{};
    reply.send(Response::html(200, render_product_page(view)));
  }
};

}  // namespace

std::string session_user(const http::HeaderMap& headers) {
  auto user = cookie_value(headers, "user");
  if (!user || user->size() > kMaxUserName || !is_header_value_safe(*user)) return "";
  return *user;
}

ProductPageService::ProductPageService(loop::Loop& loop, HttpClient& client, const Options& opts)
    : loop_(loop),
      client_(client),
      details_(opts.upstream("details")),
      reviews_(opts.upstream("reviews")),
      ratings_(opts.upstream("ratings")) {}

void ProductPageService::handle(Request& req, Reply reply) {
  const std::string& path = req.path;
  if (path == "/productpage") {
    if (!is_get(req)) return reply.send(method_not_allowed("GET, HEAD"));
    return product_page(req, std::move(reply));
  }
  if (path == "/" || path == "/index.html") {
    if (!is_get(req)) return reply.send(method_not_allowed("GET, HEAD"));
    return reply.send(Response::html(200, render_index_page()));
  }
  if (path == "/login") {
    if (req.method != "POST") return reply.send(method_not_allowed("POST"));
    return login(req, reply);
  }
  if (path == "/logout") {
    if (!is_get(req) && req.method != "POST")
      return reply.send(method_not_allowed("GET, HEAD, POST"));
    return logout(reply);
  }
  if (path == "/health") {
    if (!is_get(req)) return reply.send(method_not_allowed("GET, HEAD"));
    return reply.send(Response::html(200, "Product page is healthy"));
  }
  if (path == "/static/bookinfo.css") {
    if (!is_get(req)) return reply.send(method_not_allowed("GET, HEAD"));
    Response r = Response::text(200, std::string(stylesheet()));
    r.content_type = "text/css; charset=utf-8";
    return reply.send(std::move(r));
  }
  if (path == "/api/v1/products" || path.starts_with("/api/v1/products/")) {
    if (!is_get(req)) return reply.send(method_not_allowed("GET, HEAD"));
    return api(req, reply);
  }
  reply.send(Response::text(404, "not found\n"));
}

void ProductPageService::product_page(const Request& req, Reply reply) {
  auto fetch = std::make_shared<PageFetch>(PageFetch{reply, session_user(req.headers), {}, {}});
  http::HeaderMap headers = upstream_headers(req);
  int64_t id = the_product().id;
  // Both calls at once; each callback holds the join until the page is rendered. (shared_ptr:
  // two owners on one thread, whichever answers last renders.)
  fetch_details(id, headers, [fetch](Result<ClientResponse> r) {
    log_failure("details", r);
    fetch->details = std::move(r);
    fetch->maybe_render();
  });
  fetch_reviews(id, std::move(headers), [fetch](Result<ClientResponse> r) {
    log_failure("reviews", r);
    fetch->reviews = std::move(r);
    fetch->maybe_render();
  });
}

void ProductPageService::login(const Request& req, const Reply& reply) {
  std::string user = form_field(req.body, "username").value_or("");
  if (user.size() > kMaxUserName || !is_header_value_safe(user)) {
    reply.send(Response::text(400, "bad user name\n"));
    return;
  }
  if (user.empty()) {
    logout(reply);  // like the sample: an empty name is nobody
    return;
  }
  MB_DEBUG("productpage", "login: {}", user);
  reply.send(redirect_to_product_page(
      fmt::format("user={}; Path=/; HttpOnly; SameSite=Lax", cookie_encode(user))));
}

void ProductPageService::logout(const Reply& reply) {
  reply.send(redirect_to_product_page("user=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax"));
}

void ProductPageService::api(const Request& req, const Reply& reply) {
  std::string_view rest = std::string_view(req.path).substr(sizeof("/api/v1/products") - 1);
  if (rest.empty() || rest == "/") {
    reply.send(Response::json(200, products_json()));
    return;
  }
  rest.remove_prefix(1);
  std::string_view id_text = rest.substr(0, rest.find('/'));
  std::string_view what =
      id_text.size() < rest.size() ? rest.substr(id_text.size() + 1) : std::string_view();
  auto id = parse_id(id_text);
  if (!id) {
    reply.send(Response::json(400, error_json("please provide numeric product id")));
    return;
  }
  http::HeaderMap headers = upstream_headers(req);
  if (what.empty()) {
    fetch_details(*id, std::move(headers), [reply](Result<ClientResponse> r) {
      log_failure("details", r);
      reply.send(api_response(r, kDetailsUnavailable));
    });
  } else if (what == "reviews") {
    fetch_reviews(*id, std::move(headers), [reply](Result<ClientResponse> r) {
      log_failure("reviews", r);
      reply.send(api_response(r, kReviewsUnavailable));
    });
  } else if (what == "ratings") {
    fetch_ratings(*id, std::move(headers), [reply](Result<ClientResponse> r) {
      log_failure("ratings", r);
      reply.send(api_response(r, kProductRatingsUnavailable));
    });
  } else {
    reply.send(Response::text(404, "not found\n"));
  }
}

http::HeaderMap ProductPageService::upstream_headers(const Request& req) const {
  http::HeaderMap h;
  copy_forwarded_headers(req.headers, h, /*with_end_user=*/false);
  if (std::string user = session_user(req.headers); !user.empty()) h.add("end-user", user);
  return h;
}

void ProductPageService::fetch_details(int64_t id, http::HeaderMap headers, Done done) {
  ClientRequest call;
  call.upstream = details_;
  call.path = "/details/" + std::to_string(id);
  call.headers = std::move(headers);
  call.timeout_ms = kUpstreamTimeoutMs;
  client_.send(std::move(call), std::move(done));
}

void ProductPageService::fetch_ratings(int64_t id, http::HeaderMap headers, Done done) {
  ClientRequest call;
  call.upstream = ratings_;
  call.path = "/ratings/" + std::to_string(id);
  call.headers = std::move(headers);
  call.timeout_ms = kUpstreamTimeoutMs;
  client_.send(std::move(call), std::move(done));
}

void ProductPageService::fetch_reviews(int64_t id, http::HeaderMap headers, Done done) {
  reviews_attempt(id, std::move(headers), loop_.now_ms() + kUpstreamTimeoutMs, 1, std::move(done));
}

void ProductPageService::reviews_attempt(int64_t id, http::HeaderMap headers, uint64_t deadline,
                                         int attempt, Done done) {
  uint64_t now = loop_.now_ms();
  ClientRequest call;
  call.upstream = reviews_;
  call.path = "/reviews/" + std::to_string(id);
  call.headers = headers;
  call.timeout_ms = deadline > now ? deadline - now : 1;
  client_.send(std::move(call), [this, id, headers = std::move(headers), deadline, attempt,
                                 done = std::move(done)](Result<ClientResponse> r) mutable {
    bool ok = r && r->status == 200;
    uint64_t now = loop_.now_ms();
    if (!ok && attempt < kReviewsAttempts && now + kMinRetryBudgetMs < deadline) {
      MB_DEBUG("productpage", "reviews attempt {} failed; retrying", attempt);
      reviews_attempt(id, std::move(headers), deadline, attempt + 1, std::move(done));
      return;
    }
    done(std::move(r));
  });
}

}  // namespace meshbox::bookinfo
