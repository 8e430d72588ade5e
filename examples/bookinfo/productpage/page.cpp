#include "examples/bookinfo/productpage/page.h"

#include <fmt/core.h>

#include <algorithm>

#include "core/base/json.h"
#include "examples/bookinfo/common/text.h"

namespace meshbox::bookinfo {

namespace {

// A JSON scalar as page text: strings as they are, whole numbers without a fraction.
std::string scalar_text(const json::Value& v) {
  switch (v.type) {
    case json::Value::Type::String:
      return v.string;
    case json::Value::Type::Number:
      return v.is_integer ? std::to_string(v.integer) : fmt::format("{}", v.number);
    case json::Value::Type::Bool:
      return v.boolean ? "true" : "false";
    default:
      return "";
  }
}

// A colour that is safe inside a style attribute: lower-case letters only.
std::string safe_color(std::string_view c) {
  if (c.empty() || c.size() > 20) return "black";
  for (char ch : c)
    if (ch < 'a' || ch > 'z') return "black";
  return std::string(c);
}

void append_stars(std::string& out, int64_t stars, const std::string& color) {
  int64_t full = std::clamp<int64_t>(stars, 0, 5);
  out += "<div class=\"rating\">";
  for (int64_t i = 0; i < 5; ++i) {
    if (i < full)
      out += fmt::format(
          "<span class=\"glyphicon glyphicon-star\" style=\"color:{}\">&#9733;</span>", color);
    else
      out += fmt::format(
          "<span class=\"glyphicon glyphicon-star-empty\" style=\"color:{}\">&#9734;</span>",
          color);
  }
  out += "</div>\n";
}

void append_details(std::string& out, const DetailsView& d) {
  out += "<section class=\"details\">\n<h4>Book Details</h4>\n";
  if (!d.ok) {
    out += "<h4 class=\"error\">Error fetching product details</h4>\n<p class=\"error\">";
    out += kDetailsUnavailable;
    out += "</p>\n</section>\n";
    return;
  }
  out += "<dl>\n";
  for (const auto& [label, value] : d.fields) {
    out += "<dt>";
    append_html_escaped(out, label);
    out += ":</dt><dd>";
    append_html_escaped(out, value);
    out += "</dd>\n";
  }
  out += "</dl>\n</section>\n";
}

void append_reviews(std::string& out, const ReviewsView& r) {
  out += "<section class=\"reviews\">\n<h4>Book Reviews</h4>\n";
  if (!r.ok) {
    out += "<h4 class=\"error\">Error fetching product reviews</h4>\n<p class=\"error\">";
    out += kReviewsUnavailable;
    out += "</p>\n</section>\n";
    return;
  }
  for (const auto& review : r.reviews) {
    out += "<blockquote class=\"review\">\n<p>";
    append_html_escaped(out, review.text);
    out += "</p>\n<small>";
    append_html_escaped(out, review.reviewer);
    out += "</small>\n";
    if (review.stars) {
      append_stars(out, *review.stars, review.color);
    } else if (!review.rating_error.empty()) {
      out += "<p class=\"error\">";
      append_html_escaped(out, review.rating_error);
      out += "</p>\n";
    }
    out += "</blockquote>\n";
  }
  out += "<p class=\"served-by\">Reviews served by: ";
  append_html_escaped(out, r.podname);
  if (!r.clustername.empty() && r.clustername != "null") {
    out += " on cluster ";
    append_html_escaped(out, r.clustername);
  }
  out += "</p>\n</section>\n";
}

constexpr std::string_view kHead =
    "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
    "<title>Simple Bookstore App</title>\n"
    "<link rel=\"stylesheet\" href=\"static/bookinfo.css\">\n</head>\n<body>\n";

}  // namespace

const Product& the_product() {
  static const Product product{
      0,
      "The Comedy of Errors",
      "<a href=\"https://en.wikipedia.org/wiki/The_Comedy_of_Errors\">Wikipedia Summary</a>: "
      "The Comedy of Errors is one of <b>William Shakespeare's</b> early plays, his shortest "
      "and one of his most farcical comedies: much of its humour comes from slapstick and "
      "mistaken identity, with puns and word play besides.",
  };
  return product;
}

std::string products_json() {
  const Product& p = the_product();
  json::Writer w;
  w.begin_array()
      .begin_object()
      .field("id", p.id)
      .field("title", p.title)
      .field("descriptionHtml", p.description_html)
      .end_object()
      .end_array();
  return w.take();
}

DetailsView details_view(int status, std::string_view body) {
  DetailsView d;
  if (status != 200) return d;
  auto v = json::parse(body);
  if (!v || !v->is_object()) return d;
  static constexpr std::pair<std::string_view, std::string_view> kFields[] = {
      {"author", "Author"},   {"year", "Year"},           {"type", "Type"},
      {"pages", "Pages"},     {"publisher", "Publisher"}, {"language", "Language"},
      {"ISBN-10", "ISBN-10"}, {"ISBN-13", "ISBN-13"},
  };
  for (auto [key, label] : kFields)
    if (const json::Value* f = v->get(key)) d.fields.emplace_back(label, scalar_text(*f));
  d.ok = true;
  return d;
}

ReviewsView reviews_view(int status, std::string_view body) {
  ReviewsView r;
  if (status != 200) return r;
  auto v = json::parse(body);
  if (!v || !v->is_object()) return r;
  const json::Value* reviews = v->get("reviews");
  if (!reviews || !reviews->is_array()) return r;
  for (const auto& item : reviews->array) {
    ReviewView rv;
    if (const json::Value* x = item.get("reviewer")) rv.reviewer = x->as_string();
    if (const json::Value* x = item.get("text")) rv.text = x->as_string();
    if (const json::Value* rating = item.get("rating"); rating && rating->is_object()) {
      const json::Value* stars = rating->get("stars");
      if (stars && stars->as_int()) {
        rv.stars = *stars->as_int();
        const json::Value* color = rating->get("color");
        rv.color = safe_color(color ? std::string_view(color->as_string()) : "");
      } else if (const json::Value* err = rating->get("error")) {
        rv.rating_error = err->as_string();
      }
    }
    r.reviews.push_back(std::move(rv));
  }
  if (const json::Value* x = v->get("podname")) r.podname = x->as_string();
  if (const json::Value* x = v->get("clustername")) r.clustername = x->as_string();
  r.ok = true;
  return r;
}

std::string render_product_page(const PageView& view) {
  const Product& p = the_product();
  std::string out(kHead);
  out += "<nav class=\"navbar\">\n<a class=\"brand\" href=\"#\">BookInfo Sample</a>\n";
  if (!view.user.empty()) {
    out += "<span class=\"user\">Welcome ";
    append_html_escaped(out, view.user);
    out += "</span> <a class=\"signout\" href=\"logout\">Sign out</a>\n";
  } else {
    out +=
        "<form class=\"signin\" method=\"post\" action=\"login\">"
        "<input type=\"text\" name=\"username\" placeholder=\"User Name\"> "
        "<input type=\"password\" name=\"passwd\" placeholder=\"Password\"> "
        "<button type=\"submit\">Sign in</button></form>\n";
  }
  out += "</nav>\n<main>\n<h1 class=\"title\">";
  append_html_escaped(out, p.title);
  out += "</h1>\n<p class=\"summary\">";
  out += p.description_html;
  out += "</p>\n<div class=\"columns\">\n";
  append_details(out, view.details);
  append_reviews(out, view.reviews);
  out += "</div>\n</main>\n</body>\n</html>\n";
  return out;
}

std::string render_index_page() {
  std::string out(kHead);
  out +=
      "<main>\n<h3>Hello! This is a simple bookstore application consisting of three services "
      "as shown below</h3>\n"
      "<table class=\"services\">\n"
      "<tr><th>service</th><th>calls</th></tr>\n"
      "<tr><td>productpage</td><td>details, reviews</td></tr>\n"
      "<tr><td>details</td><td>-</td></tr>\n"
      "<tr><td>reviews</td><td>ratings (v2 and v3)</td></tr>\n"
      "<tr><td>ratings</td><td>-</td></tr>\n"
      "</table>\n"
      "<p>Click on one of the links below to auto generate a request to the backend as a real "
      "user or a tester</p>\n"
      "<p><a href=\"productpage?u=normal\">Normal user</a></p>\n"
      "<p><a href=\"productpage?u=test\">Test user</a></p>\n"
      "</main>\n</body>\n</html>\n";
  return out;
}

std::string_view stylesheet() {
  return "body { font-family: sans-serif; margin: 0; color: #222; }\n"
         ".navbar { background: #333; color: #eee; padding: 0.6em 1em; display: flex; "
         "gap: 1em; align-items: center; }\n"
         ".navbar a { color: #eee; }\n"
         ".brand { font-weight: bold; margin-right: auto; text-decoration: none; }\n"
         "main { max-width: 60em; margin: 1em auto; padding: 0 1em; }\n"
         ".columns { display: flex; gap: 2em; flex-wrap: wrap; }\n"
         ".columns section { flex: 1 1 20em; }\n"
         "dt { font-weight: bold; } dd { margin: 0 0 0.4em 0; }\n"
         "blockquote.review { border-left: 3px solid #ccc; margin: 0 0 1em 0; "
         "padding-left: 1em; }\n"
         ".rating { font-size: 1.3em; }\n"
         ".error { color: #b00; }\n"
         ".served-by { color: #666; font-size: 0.9em; }\n";
}

}  // namespace meshbox::bookinfo
