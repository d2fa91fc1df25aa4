// A small SVG chart module for the HTML report: axes with ticks and labels
// (linear and log scales), bars, filled bands, lines with several series and a
// legend, scatter points, reference lines. Output is plain inline SVG — no
// scripts, no external fonts or styles — so a report stays one file.
//
// Conventions
//   - Every string that reaches the SVG (titles, labels, legend names, point
//     tooltips) is HTML-escaped here; callers pass raw text.
//   - Values that cannot be drawn are skipped, never clamped: NaN/inf, and
//     values <= 0 on a log axis. A line breaks at such a point.
//   - Output is deterministic (fixed number formatting, no randomness), so a
//     report of the same data is byte-identical.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace memskew::report {

// Escapes & < > " ' for use in HTML text and attribute values.
std::string escape_html(std::string_view text);

enum class ScaleKind { kLinear, kLog };

struct Tick {
    double value = 0;
    std::string label;
    bool major = true;  // log axes: powers of ten are major, 2x/5x minor (unlabelled when crowded)
};

// "Nice" ticks (steps 1, 2, 5 x 10^k) covering [lo, hi], at most about
// max_ticks of them, every tick inside [lo, hi] (rounded to the step). lo == hi
// widens the range around the value.
// min_step > 0 keeps the step at least that (1 for integer quantities such as
// positions and token counts: no tick at 2.5 tokens).
std::vector<Tick> linear_ticks(double lo, double hi, int max_ticks = 6, double min_step = 0);
// Log-axis ticks in [lo, hi] (0 < lo < hi): the powers of ten; when the range
// spans less than about two decades also 2x and 5x; when it spans many, every
// second (third, ...) power so at most about max_ticks are labelled.
std::vector<Tick> log_ticks(double lo, double hi, int max_ticks = 8);
// Label of a tick value: "0", "0.25", "120", "1,000", "10k", "1M", "1e-05".
std::string format_tick(double value, double step = 0);
// A number for prose: thousands separators for integers ("12,345"), else
// `digits` significant digits.
std::string format_number(double value, int digits = 3);
// A p-value for prose: two significant digits, scientific below 1e-4, "n/a"
// when not finite.
std::string format_p_value(double p);

// The domain of an axis. For kLinear with `nice`, lo/hi expand to tick
// multiples; for kLog they expand to powers of ten (1-2-5 steps for narrow ranges).
struct Axis {
    ScaleKind kind = ScaleKind::kLinear;
    double lo = 0, hi = 1;
    std::string label;
    bool nice = true;
    int max_ticks = 6;
    bool integer = false;  // linear axis of a whole-number quantity: tick steps >= 1
};

// Computes an axis domain that covers `values` (non-finite values, and values
// <= 0 for kLog, ignored). include_zero for linear count axes.
Axis fit_axis(ScaleKind kind, const std::vector<double>& values, std::string label, bool include_zero = false);

struct Bars {
    std::string name;  // legend entry; empty: none
    std::string color = "#4e79a7";
    std::vector<double> x0, x1, y;  // bar b spans [x0[b], x1[b]] from the axis base to y[b]
    std::vector<std::string> titles;  // optional tooltip per bar
};

struct Band {
    std::string name;
    std::string color = "#4e79a7";
    double opacity = 0.2;
    std::vector<double> x, lower, upper;
};

struct Line {
    std::string name;
    std::string color = "#4e79a7";
    std::vector<double> x, y;
    bool dashed = false;
    bool step = false;     // draw as a staircase (post-step), e.g. a CCDF
    bool markers = false;  // small circles at the points
    double width = 2;
};

struct Points {
    std::string name;
    std::string color = "#4e79a7";
    std::vector<double> x, y;
    std::vector<std::string> titles;  // optional tooltip per point
    double radius = 2.5;
    double opacity = 0.45;
};

struct RefLine {
    bool vertical = true;  // x = value, else y = value
    double value = 0;
    std::string label;
    std::string color = "#888";
};

struct Chart {
    std::string id;  // element id of the <svg> (also prefixes the clip path)
    std::string title;
    int width = 640, height = 360;
    Axis x, y;
    std::vector<Bars> bars;
    std::vector<Band> bands;
    std::vector<Line> lines;
    std::vector<Points> points;
    std::vector<RefLine> refs;
    enum class LegendAt { kTopRight, kTopLeft, kBottomLeft, kBottomRight } legend_at = LegendAt::kTopRight;

    // The <svg> element (with role="img" and an aria-label of the title).
    std::string render() const;
};

// Deterministic subsample for scatter plots with many points: when n <=
// max_points, all indexes 0..n-1; otherwise every index of `keep` (e.g. the
// most memorized samples, which must stay visible) plus the remaining slots
// filled by the indexes with the smallest hash(seed, index) — a pseudo-random
// choice that is the same on every run. Sorted ascending, no duplicates.
std::vector<std::size_t> subsample_indices(std::size_t n, std::size_t max_points, std::uint64_t seed = 0,
                                           const std::vector<std::size_t>& keep = {});

// Short hex digest of a text (first 8 hex digits of xxh3-64), for redaction.
std::string short_hash(std::string_view text);

}  // namespace memskew::report
