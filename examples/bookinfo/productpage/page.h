// The HTML and CSS productpage serves, and the views of the details and reviews answers it
// renders. Pure functions: every string from a user or an upstream is HTML-escaped here.
//
// Markers tests and Istio's own task scripts look for:
//   <title>Simple Bookstore App</title>
//   each full star  <span class="glyphicon glyphicon-star" style="color:COLOR">
//   each empty star <span class="glyphicon glyphicon-star-empty" style="color:COLOR">
//   "Reviews served by: PODNAME" (+ " on cluster NAME" unless it is "null")
//   "Sorry, product details are currently unavailable for this book."
//   "Sorry, product reviews are currently unavailable for this book."
//   "Ratings service is currently unavailable" (per review, from reviews v2/v3)
//   "Welcome USER" and a "Sign out" link when logged in, a "Sign in" form otherwise.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/base/result.h"

namespace meshbox::bookinfo {

/// The one book of the sample.
struct Product {
  int64_t id = 0;
  std::string_view title;
  std::string_view description_html;  // trusted: written here, rendered unescaped
};
const Product& the_product();

/// GET /api/v1/products.
std::string products_json();

inline constexpr std::string_view kDetailsUnavailable =
    "Sorry, product details are currently unavailable for this book.";
inline constexpr std::string_view kReviewsUnavailable =
    "Sorry, product reviews are currently unavailable for this book.";
inline constexpr std::string_view kProductRatingsUnavailable =
    "Sorry, product ratings are currently unavailable for this book.";

struct DetailsView {
  bool ok = false;
  std::vector<std::pair<std::string, std::string>> fields;  // label, value (not escaped)
};
/// From a details answer: status 200 and a JSON object; anything else is !ok.
DetailsView details_view(int status, std::string_view body);

struct ReviewView {
  std::string reviewer;
  std::string text;
  std::optional<int64_t> stars;  // a rating with stars (clamped to 0–5 when shown)
  std::string color;             // the stars' colour, [a-z] only
  std::string rating_error;      // a rating that reviews could not get
};
struct ReviewsView {
  bool ok = false;
  std::vector<ReviewView> reviews;
  std::string podname;
  std::string clustername;
};
/// From a reviews answer: status 200 and a JSON object with "reviews"; anything else is !ok.
ReviewsView reviews_view(int status, std::string_view body);

struct PageView {
  std::string user;  // empty: not logged in
  DetailsView details;
  ReviewsView reviews;
};

std::string render_product_page(const PageView& view);
std::string render_index_page();
std::string_view stylesheet();

}  // namespace meshbox::bookinfo
