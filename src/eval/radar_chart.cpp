// The radar chart of MT-Bench results, written as SVG by hand: a few dozen elements, so no
// plotting library is worth its dependency.
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "eval/evaluation.h"

namespace zephyr {

std::string xml_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '&') o += "&amp;";
    else if (c == '<') o += "&lt;";
    else if (c == '>') o += "&gt;";
    else if (c == '"') o += "&quot;";
    else o += c;
  }
  return o;
}

namespace {

std::string num(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.1f", v);
  return b;
}

}  // namespace

std::string radar_svg(const std::vector<std::string>& categories, const std::vector<std::pair<std::string, std::vector<double>>>& models) {
  static const char* colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"};
  const double cx = 330, cy = 300, R = 210, kPi = 3.14159265358979323846;
  const size_t n = categories.size();
  const auto at = [&](size_t i, double v) {  // category i, score v (0-10) -> point
    const double a = -kPi / 2 + 2 * kPi * double(i) / double(std::max<size_t>(n, 1));
    return std::make_pair(cx + R * v / 10 * std::cos(a), cy + R * v / 10 * std::sin(a));
  };
  std::string s = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"900\" height=\"620\" "
                  "viewBox=\"0 0 900 620\" font-family=\"sans-serif\" font-size=\"14\">\n<rect width=\"900\" height=\"620\" fill=\"white\"/>\n"
                  "<text x=\"330\" y=\"30\" text-anchor=\"middle\" font-size=\"18\">MT-Bench score by category (1-10)</text>\n";
  for (int ring = 2; ring <= 10; ring += 2) {  // grid rings
    std::string pts;
    for (size_t i = 0; i <= n; ++i) {
      const auto [x, y] = at(i % std::max<size_t>(n, 1), ring);
      pts += num(x) + "," + num(y) + " ";
    }
    s += "<polyline class=\"grid\" points=\"" + pts + "\" fill=\"none\" stroke=\"#ddd\"/>\n";
    const auto [lx, ly] = at(0, ring);
    s += "<text x=\"" + num(lx + 4) + "\" y=\"" + num(ly) + "\" fill=\"#999\" font-size=\"11\">" + std::to_string(ring) + "</text>\n";
  }
  for (size_t i = 0; i < n; ++i) {
    const auto [x, y] = at(i, 10);
    const auto [tx, ty] = at(i, 11.3);
    s += "<line class=\"axis\" x1=\"" + num(cx) + "\" y1=\"" + num(cy) + "\" x2=\"" + num(x) + "\" y2=\"" + num(y) + "\" stroke=\"#bbb\"/>\n";
    const char* anchor = std::fabs(tx - cx) < 20 ? "middle" : tx < cx ? "end" : "start";
    s += "<text class=\"category\" x=\"" + num(tx) + "\" y=\"" + num(ty + 5) + "\" text-anchor=\"" + anchor + "\">" + xml_escape(categories[i]) + "</text>\n";
  }
  for (size_t m = 0; m < models.size(); ++m) {
    const char* color = colors[m % 8];
    std::string pts;
    for (size_t i = 0; i < n; ++i) {
      const auto [x, y] = at(i, std::clamp(i < models[m].second.size() ? models[m].second[i] : 0.0, 0.0, 10.0));
      pts += num(x) + "," + num(y) + " ";
    }
    s += "<polygon class=\"model\" data-model=\"" + xml_escape(models[m].first) + "\" points=\"" + pts + "\" fill=\"" + color +
         "\" fill-opacity=\"0.15\" stroke=\"" + color + "\" stroke-width=\"2\"/>\n";
    const std::string ly = num(80 + 26 * double(m));
    s += "<rect x=\"640\" y=\"" + num(80 + 26 * double(m) - 12) + "\" width=\"16\" height=\"16\" fill=\"" + color + "\"/>\n";
    std::string label = models[m].first;
    if (label.size() > 30) label.erase(0, label.size() - 29), label.insert(0, "...");  // a long path: its end
    s += "<text x=\"664\" y=\"" + ly + "\">" + xml_escape(label) + "</text>\n";
  }
  return s + "</svg>\n";
}

}  // namespace zephyr
