#include "report/svg.h"

#include <fmt/format.h>
#include <xxhash.h>

#include <algorithm>
#include <cassert>
#include <cmath>
#include <limits>
#include <unordered_set>

namespace memskew::report {

namespace {

constexpr double kEps = 1e-9;

// Length of the valid UTF-8 sequence starting at s[i], or 0 when invalid.
std::size_t utf8_sequence_length(std::string_view s, std::size_t i) {
    const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[i + k]); };
    const unsigned char c = b(0);
    if (c < 0x80) return 1;
    std::size_t n = 0;
    uint32_t cp = 0;
    if ((c & 0xE0) == 0xC0) n = 2, cp = c & 0x1F;
    else if ((c & 0xF0) == 0xE0) n = 3, cp = c & 0x0F;
    else if ((c & 0xF8) == 0xF0) n = 4, cp = c & 0x07;
    else return 0;
    if (i + n > s.size()) return 0;
    for (std::size_t k = 1; k < n; ++k) {
        if ((b(k) & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (b(k) & 0x3F);
    }
    // Overlong forms, surrogates and values past U+10FFFF are invalid.
    if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000)) return 0;
    if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return n;
}

}  // namespace

std::string escape_html(std::string_view text) {
    std::string out;
    out.reserve(text.size() + text.size() / 8);
    for (std::size_t i = 0; i < text.size();) {
        const char c = text[i];
        switch (c) {
            case '&': out += "&amp;"; ++i; continue;
            case '<': out += "&lt;"; ++i; continue;
            case '>': out += "&gt;"; ++i; continue;
            case '"': out += "&quot;"; ++i; continue;
            case '\'': out += "&#39;"; ++i; continue;
            default: break;
        }
        const auto u = static_cast<unsigned char>(c);
        // Sample texts are user data: control characters and broken UTF-8
        // would make the document invalid, so they become U+FFFD.
        if ((u < 0x20 && c != '\n' && c != '\t' && c != '\r') || u == 0x7F) {
            out += "\xEF\xBF\xBD";
            ++i;
            continue;
        }
        const std::size_t n = utf8_sequence_length(text, i);
        if (n == 0) {
            out += "\xEF\xBF\xBD";
            ++i;
            continue;
        }
        out.append(text.substr(i, n));
        i += n;
    }
    return out;
}

// ---------------------------------------------------------------------------
// Numbers and ticks
// ---------------------------------------------------------------------------

namespace {

std::string with_thousands(long long v) {
    std::string digits = std::to_string(v < 0 ? -v : v);
    std::string out;
    const int n = static_cast<int>(digits.size());
    for (int i = 0; i < n; ++i) {
        out += digits[i];
        if ((n - 1 - i) % 3 == 0 && i != n - 1) out += ',';
    }
    return v < 0 ? "-" + out : out;
}

// Decimal places that show a step exactly (0.2 -> 1, 0.05 -> 2, 5 -> 0).
int decimals_for_step(double step) {
    step = std::fabs(step);
    for (int d = 0; d <= 12; ++d) {
        const double scaled = step * std::pow(10.0, d);
        if (std::fabs(scaled - std::round(scaled)) < 1e-6 * std::max(1.0, scaled)) return d;
    }
    return 12;
}

std::string strip_zeros(std::string s) {
    if (s.find('.') == std::string::npos) return s;
    while (!s.empty() && s.back() == '0') s.pop_back();
    if (!s.empty() && s.back() == '.') s.pop_back();
    return s;
}

}  // namespace

std::string format_tick(double value, double step) {
    if (!std::isfinite(value)) return value > 0 ? "inf" : (value < 0 ? "-inf" : "NaN");
    const double scale = step > 0 ? step : std::fabs(value);
    if (std::fabs(value) < 1e-12 || (step > 0 && std::fabs(value) < step * kEps)) return "0";
    const double a = std::fabs(value);
    const bool integral = std::fabs(value - std::round(value)) < 1e-9 * std::max(1.0, a);
    if (a >= 1e4 && integral) {
        // 10k, 2.5M: short labels for large counts and subset sizes.
        static const struct { double div; const char* suffix; } units[] = {
            {1e12, "T"}, {1e9, "G"}, {1e6, "M"}, {1e3, "k"}};
        for (const auto& u : units) {
            if (a >= u.div) return strip_zeros(fmt::format("{:.2f}", value / u.div)) + u.suffix;
        }
    }
    if (integral && a < 1e4) return with_thousands(static_cast<long long>(std::llround(value)));
    if (a < 1e-3 && (step == 0 || scale < 1e-3)) {
        // 1e-5 rather than 0.00001
        const int e = static_cast<int>(std::floor(std::log10(a) + kEps));
        const double mant = value / std::pow(10.0, e);
        const std::string m = strip_zeros(fmt::format("{:.2f}", mant));
        return (m == "1" ? std::string("1") : m) + "e" + std::to_string(e);
    }
    if (step > 0) return fmt::format("{:.{}f}", value, decimals_for_step(step));
    return strip_zeros(fmt::format("{:.3g}", value));
}

std::string format_p_value(double p) {
    if (!std::isfinite(p)) return "n/a";
    if (p < 1e-4) return fmt::format("{:.1e}", p);
    return format_number(p, 2);
}

std::string format_number(double value, int digits) {
    if (!std::isfinite(value)) return value > 0 ? "inf" : (value < 0 ? "-inf" : "n/a");
    if (std::fabs(value - std::round(value)) < 1e-9 && std::fabs(value) < 1e15) {
        return with_thousands(static_cast<long long>(std::llround(value)));
    }
    const double a = std::fabs(value);
    if (a >= 1e-3 && a < 1e6) {
        // Significant digits without exponent: 0.0123, 12.3, 1,234.5
        const int mag = static_cast<int>(std::floor(std::log10(a)));
        const int dec = std::max(0, digits - 1 - mag);
        std::string s = strip_zeros(fmt::format("{:.{}f}", value, dec));
        if (a >= 1000) {
            const auto dot = s.find('.');
            const std::string int_part = s.substr(0, dot);
            const std::string rest = dot == std::string::npos ? "" : s.substr(dot);
            s = with_thousands(std::stoll(int_part)) + rest;
        }
        return s;
    }
    return fmt::format("{:.{}g}", value, digits);
}

std::vector<Tick> linear_ticks(double lo, double hi, int max_ticks, double min_step) {
    if (!std::isfinite(lo) || !std::isfinite(hi)) return {};
    if (lo > hi) std::swap(lo, hi);
    if (hi - lo < 1e-12 * std::max(1.0, std::fabs(lo))) {
        const double w = lo == 0 ? 1.0 : std::fabs(lo) * 0.5;
        lo -= w;
        hi += w;
    }
    max_ticks = std::max(2, max_ticks);
    const double range = hi - lo;
    const double rough = range / (max_ticks - 1);
    const double mag = std::pow(10.0, std::floor(std::log10(rough)));
    double step = 10 * mag;
    for (double m : {1.0, 2.0, 5.0, 10.0}) {
        if (m * mag * (max_ticks - 1) >= range * (1 - 1e-9)) {
            step = m * mag;
            break;
        }
    }
    if (min_step > 0 && step < min_step) step = min_step;
    std::vector<Tick> ticks;
    const long long k0 = static_cast<long long>(std::ceil(lo / step - kEps));
    const long long k1 = static_cast<long long>(std::floor(hi / step + kEps));
    for (long long k = k0; k <= k1; ++k) {
        const double v = static_cast<double>(k) * step;
        ticks.push_back({v, format_tick(v, step), true});
    }
    return ticks;
}

std::vector<Tick> log_ticks(double lo, double hi, int max_ticks) {
    if (!(lo > 0) || !(hi > 0) || !std::isfinite(lo) || !std::isfinite(hi)) return {};
    if (lo > hi) std::swap(lo, hi);
    const int e0 = static_cast<int>(std::floor(std::log10(lo) + kEps));
    const int e1 = static_cast<int>(std::ceil(std::log10(hi) - kEps));
    const int decades = std::max(1, e1 - e0);
    const auto inside = [&](double v) { return v >= lo * (1 - kEps) && v <= hi * (1 + kEps); };
    std::vector<Tick> ticks;
    if (decades <= 2) {
        for (int e = e0; e <= e1; ++e) {
            for (double m : {1.0, 2.0, 5.0}) {
                const double v = m * std::pow(10.0, e);
                if (inside(v)) ticks.push_back({v, format_tick(v), true});
            }
        }
        return ticks;
    }
    max_ticks = std::max(2, max_ticks);
    const int every = std::max(1, (decades + max_ticks - 1) / max_ticks);
    for (int e = e0; e <= e1; ++e) {
        const double v = std::pow(10.0, e);
        if (!inside(v)) continue;
        const bool major = ((e % every) + every) % every == 0;
        ticks.push_back({v, major ? format_tick(v) : std::string(), major});
    }
    return ticks;
}

Axis fit_axis(ScaleKind kind, const std::vector<double>& values, std::string label, bool include_zero) {
    Axis a;
    a.kind = kind;
    a.label = std::move(label);
    double lo = std::numeric_limits<double>::infinity(), hi = -lo;
    for (double v : values) {
        if (!std::isfinite(v) || (kind == ScaleKind::kLog && v <= 0)) continue;
        lo = std::min(lo, v);
        hi = std::max(hi, v);
    }
    if (kind == ScaleKind::kLog) {
        if (!(lo <= hi)) lo = 1, hi = 10;
        a.lo = lo;
        a.hi = hi;
    } else {
        if (!(lo <= hi)) lo = 0, hi = 1;
        if (include_zero) lo = std::min(lo, 0.0), hi = std::max(hi, 0.0);
        a.lo = lo;
        a.hi = hi;
    }
    return a;
}

// ---------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------

namespace {

struct Resolved {
    ScaleKind kind;
    double lo, hi;      // domain
    double r0, r1;      // pixel range
    std::vector<Tick> ticks;

    bool valid(double v) const { return std::isfinite(v) && (kind == ScaleKind::kLinear || v > 0); }
    double map(double v) const {
        double t;
        if (kind == ScaleKind::kLog) t = (std::log10(v) - std::log10(lo)) / (std::log10(hi) - std::log10(lo));
        else t = (v - lo) / (hi - lo);
        return r0 + t * (r1 - r0);
    }
};

Resolved resolve(const Axis& axis, double r0, double r1) {
    Resolved r{axis.kind, axis.lo, axis.hi, r0, r1, {}};
    if (r.lo > r.hi) std::swap(r.lo, r.hi);
    if (axis.kind == ScaleKind::kLog) {
        if (!(r.lo > 0)) r.lo = std::min(1.0, r.hi > 0 ? r.hi / 10 : 1.0);
        if (!(r.hi > r.lo)) r.hi = r.lo * 10;
        if (axis.nice) {
            const double span = std::log10(r.hi) - std::log10(r.lo);
            // 1-2-5 boundaries for narrow ranges, powers of ten otherwise.
            const auto down = [&](double v) {
                const int e = static_cast<int>(std::floor(std::log10(v) + kEps));
                const double p = std::pow(10.0, e);
                if (span > 2) return p;
                for (double m : {5.0, 2.0, 1.0}) if (m * p <= v * (1 + kEps)) return m * p;
                return p;
            };
            const auto up = [&](double v) {
                const int e = static_cast<int>(std::floor(std::log10(v) + kEps));
                const double p = std::pow(10.0, e);
                if (v <= p * (1 + kEps)) return p;
                if (span > 2) return p * 10;
                for (double m : {2.0, 5.0, 10.0}) if (m * p >= v * (1 - kEps)) return m * p;
                return p * 10;
            };
            r.lo = down(r.lo);
            r.hi = up(r.hi);
            if (!(r.hi > r.lo)) r.hi = r.lo * 10;
        }
        r.ticks = log_ticks(r.lo, r.hi, axis.max_ticks);
    } else {
        if (!(r.hi > r.lo)) {
            const double w = r.lo == 0 ? 1.0 : std::fabs(r.lo) * 0.5;
            r.lo -= w;
            r.hi += w;
        }
        r.ticks = linear_ticks(r.lo, r.hi, axis.max_ticks, axis.integer ? 1.0 : 0.0);
        if (axis.nice && r.ticks.size() >= 2) {
            const double step = r.ticks[1].value - r.ticks[0].value;
            const double nlo = std::floor(r.lo / step + kEps) * step;
            const double nhi = std::ceil(r.hi / step - kEps) * step;
            r.lo = nlo;
            r.hi = nhi;
            r.ticks = linear_ticks(r.lo, r.hi, axis.max_ticks, axis.integer ? 1.0 : 0.0);
        }
    }
    return r;
}

std::string px(double v) { return strip_zeros(fmt::format("{:.1f}", v)); }

struct LegendEntry {
    enum Kind { kLine, kBox, kDot } kind;
    std::string name, color;
    bool dashed = false;
    double opacity = 1;
};

}  // namespace

std::string Chart::render() const {
    const double left = 72, right = 18, top = title.empty() ? 14 : 34, bottom = 50;
    const double pw = width - left - right, ph = height - top - bottom;
    const Resolved xs = resolve(x, left, left + pw);
    const Resolved ys = resolve(y, top + ph, top);
    const std::string clip = id + "-clip";

    std::string s;
    s.reserve(4096);
    s += fmt::format(
        "<svg id=\"{}\" class=\"chart\" width=\"{}\" height=\"{}\" "
        "viewBox=\"0 0 {} {}\" role=\"img\" aria-label=\"{}\">\n",
        escape_html(id), width, height, width, height, escape_html(title));
    s += fmt::format("<defs><clipPath id=\"{}\"><rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\"/></clipPath></defs>\n",
                     escape_html(clip), px(left), px(top), px(pw), px(ph));
    s += fmt::format("<rect x=\"0\" y=\"0\" width=\"{}\" height=\"{}\" fill=\"#fff\"/>\n", width, height);
    if (!title.empty()) {
        s += fmt::format("<text x=\"{}\" y=\"20\" font-size=\"14\" font-weight=\"600\" fill=\"#222\">{}</text>\n",
                         px(left), escape_html(title));
    }

    // Grid and tick labels.
    s += "<g font-size=\"11\" fill=\"#444\">\n";
    for (const Tick& t : xs.ticks) {
        const double X = xs.map(t.value);
        s += fmt::format("<line x1=\"{0}\" y1=\"{1}\" x2=\"{0}\" y2=\"{2}\" stroke=\"{3}\"/>\n", px(X), px(top),
                         px(top + ph), t.major ? "#e4e4e4" : "#f1f1f1");
        if (!t.label.empty()) {
            s += fmt::format("<line x1=\"{0}\" y1=\"{1}\" x2=\"{0}\" y2=\"{2}\" stroke=\"#333\"/>\n", px(X),
                             px(top + ph), px(top + ph + 4));
            s += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n", px(X),
                             px(top + ph + 16), escape_html(t.label));
        }
    }
    for (const Tick& t : ys.ticks) {
        const double Y = ys.map(t.value);
        s += fmt::format("<line x1=\"{0}\" y1=\"{1}\" x2=\"{2}\" y2=\"{1}\" stroke=\"{3}\"/>\n", px(left), px(Y),
                         px(left + pw), t.major ? "#e4e4e4" : "#f1f1f1");
        if (!t.label.empty()) {
            s += fmt::format("<line x1=\"{0}\" y1=\"{1}\" x2=\"{2}\" y2=\"{1}\" stroke=\"#333\"/>\n", px(left - 4),
                             px(Y), px(left));
            s += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\n", px(left - 7), px(Y + 4),
                             escape_html(t.label));
        }
    }
    s += "</g>\n";

    // Data, clipped to the plot area.
    std::vector<LegendEntry> legend;
    s += fmt::format("<g clip-path=\"url(#{})\">\n", escape_html(clip));
    for (const Band& b : bands) {
        std::vector<std::pair<double, double>> upper, lower;
        const std::size_t n = std::min({b.x.size(), b.lower.size(), b.upper.size()});
        for (std::size_t i = 0; i < n; ++i) {
            if (!xs.valid(b.x[i]) || !ys.valid(b.lower[i]) || !ys.valid(b.upper[i])) continue;
            upper.emplace_back(xs.map(b.x[i]), ys.map(b.upper[i]));
            lower.emplace_back(xs.map(b.x[i]), ys.map(b.lower[i]));
        }
        if (upper.size() >= 2) {
            std::string d;
            for (std::size_t i = 0; i < upper.size(); ++i)
                d += fmt::format("{}{},{}", i ? " L" : "M", px(upper[i].first), px(upper[i].second));
            for (std::size_t i = lower.size(); i-- > 0;)
                d += fmt::format(" L{},{}", px(lower[i].first), px(lower[i].second));
            d += " Z";
            s += fmt::format("<path d=\"{}\" fill=\"{}\" fill-opacity=\"{}\" stroke=\"none\"/>\n", d,
                             escape_html(b.color), b.opacity);
        }
        if (!b.name.empty()) legend.push_back({LegendEntry::kBox, b.name, b.color, false, b.opacity + 0.1});
    }
    for (const Bars& b : bars) {
        const double base = ys.kind == ScaleKind::kLog ? top + ph : ys.map(std::max(ys.lo, std::min(0.0, ys.hi)));
        const std::size_t n = std::min({b.x0.size(), b.x1.size(), b.y.size()});
        for (std::size_t i = 0; i < n; ++i) {
            if (!xs.valid(b.x0[i]) || !xs.valid(b.x1[i]) || !ys.valid(b.y[i])) continue;
            const double X0 = xs.map(b.x0[i]), X1 = xs.map(b.x1[i]), Y = ys.map(b.y[i]);
            const double w = std::max(0.8, X1 - X0 - (X1 - X0 > 4 ? 1 : 0));
            s += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\">", px(X0),
                             px(std::min(Y, base)), px(w), px(std::fabs(base - Y)), escape_html(b.color));
            if (i < b.titles.size() && !b.titles[i].empty()) s += "<title>" + escape_html(b.titles[i]) + "</title>";
            s += "</rect>\n";
        }
        if (!b.name.empty()) legend.push_back({LegendEntry::kBox, b.name, b.color});
    }
    for (const Line& l : lines) {
        std::string d;
        bool pen = false;
        double lastY = 0;
        const std::size_t n = std::min(l.x.size(), l.y.size());
        std::string markers;
        for (std::size_t i = 0; i < n; ++i) {
            if (!xs.valid(l.x[i]) || !ys.valid(l.y[i])) {
                pen = false;
                continue;
            }
            const double X = xs.map(l.x[i]), Y = ys.map(l.y[i]);
            if (!pen) d += fmt::format("{}M{},{}", d.empty() ? "" : " ", px(X), px(Y));
            else if (l.step) d += fmt::format(" H{} V{}", px(X), px(Y));
            else d += fmt::format(" L{},{}", px(X), px(Y));
            pen = true;
            lastY = Y;
            if (l.markers) markers += fmt::format("<circle cx=\"{}\" cy=\"{}\" r=\"3\" fill=\"{}\"/>\n", px(X), px(Y),
                                                  escape_html(l.color));
        }
        (void)lastY;
        if (!d.empty()) {
            s += fmt::format("<path d=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"{}\"{} "
                             "stroke-linejoin=\"round\"/>\n",
                             d, escape_html(l.color), l.width, l.dashed ? " stroke-dasharray=\"6 4\"" : "");
        }
        s += markers;
        if (!l.name.empty()) legend.push_back({LegendEntry::kLine, l.name, l.color, l.dashed});
    }
    for (const Points& p : points) {
        const std::size_t n = std::min(p.x.size(), p.y.size());
        s += fmt::format("<g fill=\"{}\" fill-opacity=\"{}\">\n", escape_html(p.color), p.opacity);
        for (std::size_t i = 0; i < n; ++i) {
            if (!xs.valid(p.x[i]) || !ys.valid(p.y[i])) continue;
            s += fmt::format("<circle cx=\"{}\" cy=\"{}\" r=\"{}\"", px(xs.map(p.x[i])), px(ys.map(p.y[i])),
                             px(p.radius));
            if (i < p.titles.size() && !p.titles[i].empty()) s += "><title>" + escape_html(p.titles[i]) + "</title></circle>\n";
            else s += "/>\n";
        }
        s += "</g>\n";
        if (!p.name.empty()) legend.push_back({LegendEntry::kDot, p.name, p.color, false, std::min(1.0, p.opacity + 0.3)});
    }
    for (const RefLine& r : refs) {
        if (r.vertical) {
            if (!xs.valid(r.value)) continue;
            const double X = xs.map(r.value);
            s += fmt::format("<line x1=\"{0}\" y1=\"{1}\" x2=\"{0}\" y2=\"{2}\" stroke=\"{3}\" stroke-dasharray=\"3 3\"/>\n",
                             px(X), px(top), px(top + ph), escape_html(r.color));
            if (!r.label.empty())
                s += fmt::format("<text x=\"{}\" y=\"{}\" font-size=\"11\" fill=\"{}\">{}</text>\n", px(X + 4),
                                 px(top + ph - 6), escape_html(r.color), escape_html(r.label));
        } else {
            if (!ys.valid(r.value)) continue;
            const double Y = ys.map(r.value);
            s += fmt::format("<line x1=\"{0}\" y1=\"{1}\" x2=\"{2}\" y2=\"{1}\" stroke=\"{3}\" stroke-dasharray=\"3 3\"/>\n",
                             px(left), px(Y), px(left + pw), escape_html(r.color));
            if (!r.label.empty())
                s += fmt::format("<text x=\"{}\" y=\"{}\" font-size=\"11\" fill=\"{}\">{}</text>\n", px(left + 6),
                                 px(Y - 4), escape_html(r.color), escape_html(r.label));
        }
    }
    s += "</g>\n";

    // Axes and their labels.
    s += fmt::format("<path d=\"M{},{} V{} H{}\" fill=\"none\" stroke=\"#333\"/>\n", px(left), px(top), px(top + ph),
                     px(left + pw));
    if (!x.label.empty())
        s += fmt::format("<text x=\"{}\" y=\"{}\" font-size=\"12\" text-anchor=\"middle\" fill=\"#222\">{}</text>\n",
                         px(left + pw / 2), px(height - 12), escape_html(x.label));
    if (!y.label.empty())
        s += fmt::format("<text transform=\"translate(16,{}) rotate(-90)\" font-size=\"12\" text-anchor=\"middle\" "
                         "fill=\"#222\">{}</text>\n",
                         px(top + ph / 2), escape_html(y.label));

    // Legend inside the plot area, on a white box.
    if (!legend.empty()) {
        std::size_t longest = 0;
        for (const auto& e : legend) longest = std::max(longest, e.name.size());
        const double row = 17, lw = 34 + 6.3 * static_cast<double>(std::min<std::size_t>(longest, 48)) + 10;
        const double lh = row * static_cast<double>(legend.size()) + 8;
        const bool at_right = legend_at == LegendAt::kTopRight || legend_at == LegendAt::kBottomRight;
        const bool at_top = legend_at == LegendAt::kTopRight || legend_at == LegendAt::kTopLeft;
        const double lx = at_right ? left + pw - lw - 8 : left + 8;
        const double ly = at_top ? top + 8 : top + ph - lh - 8;
        s += fmt::format("<g class=\"legend\" font-size=\"11\" fill=\"#222\">\n<rect x=\"{}\" y=\"{}\" width=\"{}\" "
                         "height=\"{}\" fill=\"#fff\" fill-opacity=\"0.9\" stroke=\"#ccc\"/>\n",
                         px(lx), px(ly), px(lw), px(lh));
        for (std::size_t i = 0; i < legend.size(); ++i) {
            const auto& e = legend[i];
            const double cy = ly + 4 + row * (static_cast<double>(i) + 0.5);
            if (e.kind == LegendEntry::kLine) {
                s += fmt::format("<line x1=\"{0}\" y1=\"{2}\" x2=\"{1}\" y2=\"{2}\" stroke=\"{3}\" stroke-width=\"2\"{4}/>\n",
                                 px(lx + 6), px(lx + 28), px(cy), escape_html(e.color),
                                 e.dashed ? " stroke-dasharray=\"6 4\"" : "");
            } else if (e.kind == LegendEntry::kBox) {
                s += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"22\" height=\"10\" fill=\"{}\" fill-opacity=\"{}\"/>\n",
                                 px(lx + 6), px(cy - 5), escape_html(e.color), e.opacity);
            } else {
                s += fmt::format("<circle cx=\"{}\" cy=\"{}\" r=\"4\" fill=\"{}\" fill-opacity=\"{}\"/>\n", px(lx + 17),
                                 px(cy), escape_html(e.color), e.opacity);
            }
            s += fmt::format("<text x=\"{}\" y=\"{}\">{}</text>\n", px(lx + 34), px(cy + 4), escape_html(e.name));
        }
        s += "</g>\n";
    }
    s += "</svg>\n";
    return s;
}

std::vector<std::size_t> subsample_indices(std::size_t n, std::size_t max_points, std::uint64_t seed,
                                           const std::vector<std::size_t>& keep) {
    std::vector<std::size_t> out;
    if (n <= max_points) {
        out.resize(n);
        for (std::size_t i = 0; i < n; ++i) out[i] = i;
        return out;
    }
    std::unordered_set<std::size_t> kept;
    for (std::size_t k : keep)
        if (k < n) kept.insert(k);
    out.assign(kept.begin(), kept.end());
    if (out.size() < max_points) {
        const std::size_t slots = max_points - out.size();
        std::vector<std::pair<std::uint64_t, std::size_t>> ranked;
        ranked.reserve(n - kept.size());
        for (std::size_t i = 0; i < n; ++i) {
            if (kept.count(i)) continue;
            const std::uint64_t v = static_cast<std::uint64_t>(i);
            unsigned char bytes[8];
            for (int b = 0; b < 8; ++b) bytes[b] = static_cast<unsigned char>(v >> (8 * b));  // little-endian everywhere
            ranked.emplace_back(XXH3_64bits_withSeed(bytes, sizeof bytes, seed), i);
        }
        const std::size_t take = std::min(slots, ranked.size());
        std::nth_element(ranked.begin(), ranked.begin() + static_cast<std::ptrdiff_t>(take), ranked.end());
        for (std::size_t i = 0; i < take; ++i) out.push_back(ranked[i].second);
    }
    std::sort(out.begin(), out.end());
    return out;
}

std::string short_hash(std::string_view text) {
    return fmt::format("{:016x}", XXH3_64bits(text.data(), text.size())).substr(0, 8);
}

}  // namespace memskew::report
