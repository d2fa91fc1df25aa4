// The report's SVG primitives: ticks on linear and log axes for hand-worked
// ranges, number labels, escaping, deterministic subsampling, element counts,
// and where the reproduced prefix ends in a reference text.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "report/svg.h"
#include "report/text-marks.h"

using namespace memskew::report;

namespace {

std::vector<double> values(const std::vector<Tick>& ticks) {
    std::vector<double> v;
    for (const auto& t : ticks) v.push_back(t.value);
    return v;
}
std::vector<std::string> labels(const std::vector<Tick>& ticks) {
    std::vector<std::string> v;
    for (const auto& t : ticks) v.push_back(t.label);
    return v;
}
std::size_t count(const std::string& s, const std::string& what) {
    std::size_t n = 0;
    for (auto p = s.find(what); p != std::string::npos; p = s.find(what, p + 1)) ++n;
    return n;
}

TEST(ReportTicks, LinearUnitRangeStepsByFifths) {
    // range 1, at most 6 ticks: rough step 0.2 -> step 0.2
    const auto t = linear_ticks(0, 1, 6);
    EXPECT_THAT(labels(t), ::testing::ElementsAre("0", "0.2", "0.4", "0.6", "0.8", "1"));
    EXPECT_NEAR(t[3].value, 0.6, 1e-12);
}

TEST(ReportTicks, LinearPicksOneTwoFive) {
    // 0..47: steps 1, 2, 5 need more than 6 ticks; 10 fits -> 0, 10, 20, 30, 40
    EXPECT_THAT(values(linear_ticks(0, 47, 6)), ::testing::ElementsAre(0, 10, 20, 30, 40));
    // -3..12: range 15, step 5 (5 * 5 >= 15) -> ticks inside the range only
    EXPECT_THAT(values(linear_ticks(-3, 12, 6)), ::testing::ElementsAre(0, 5, 10));
    // 0.001..0.0042: step 0.001
    EXPECT_THAT(labels(linear_ticks(0.001, 0.0042, 5)), ::testing::ElementsAre("0.001", "0.002", "0.003", "0.004"));
    // 0..25000 with 6 ticks: step 5000, k-suffixed labels
    EXPECT_THAT(labels(linear_ticks(0, 25000, 6)), ::testing::ElementsAre("0", "5,000", "10k", "15k", "20k", "25k"));
}

TEST(ReportTicks, LinearDegenerateRangeWidens) {
    const auto t = linear_ticks(5, 5, 6);
    ASSERT_GE(t.size(), 2u);
    EXPECT_LE(t.front().value, 5);
    EXPECT_GE(t.back().value, 5);
    EXPECT_THAT(values(linear_ticks(0, 0, 6)), ::testing::ElementsAre(-1, -0.5, 0, 0.5, 1));  // widened to [-1, 1]
}

TEST(ReportTicks, LogPowersOfTen) {
    EXPECT_THAT(labels(log_ticks(1, 1000)), ::testing::ElementsAre("1", "10", "100", "1,000"));
    EXPECT_THAT(values(log_ticks(1e-6, 1)), ::testing::ElementsAre(1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 0.1, 1));
    EXPECT_EQ(log_ticks(1e-6, 1)[0].label, "1e-6");
    EXPECT_EQ(log_ticks(1e-6, 1)[3].label, "0.001");
}

TEST(ReportTicks, LogNarrowRangeAddsTwoAndFive) {
    EXPECT_THAT(values(log_ticks(1, 100)), ::testing::ElementsAre(1, 2, 5, 10, 20, 50, 100));
    EXPECT_THAT(values(log_ticks(3, 40)), ::testing::ElementsAre(5, 10, 20));
}

TEST(ReportTicks, LogWideRangeLabelsEverySecondDecade) {
    // 12 decades, at most 8 labels: every 2nd power labelled, the others unlabelled grid lines
    const auto t = log_ticks(1, 1e12, 8);
    ASSERT_EQ(t.size(), 13u);
    std::vector<std::string> shown;
    for (const auto& x : t)
        if (x.major) shown.push_back(x.label);
    EXPECT_THAT(shown, ::testing::ElementsAre("1", "100", "10k", "1M", "100M", "10G", "1T"));
    EXPECT_TRUE(t[1].label.empty());
    EXPECT_TRUE(log_ticks(0, 10).empty());  // no log axis through 0
}

TEST(ReportNumbers, Labels) {
    EXPECT_EQ(format_tick(0), "0");
    EXPECT_EQ(format_tick(1234), "1,234");
    EXPECT_EQ(format_tick(15000), "15k");
    EXPECT_EQ(format_tick(2500000), "2.5M");
    EXPECT_EQ(format_tick(1e-5), "1e-5");
    EXPECT_EQ(format_tick(0.25, 0.05), "0.25");
    EXPECT_EQ(format_number(12345), "12,345");
    EXPECT_EQ(format_number(0.123456, 3), "0.123");
    EXPECT_EQ(format_number(1234.5678, 6), "1,234.57");
    EXPECT_EQ(format_number(std::nan("")), "n/a");
}

TEST(ReportEscape, HtmlSpecialCharacters) {
    EXPECT_EQ(escape_html("<script>alert(\"x&y\")</script>'"),
              "&lt;script&gt;alert(&quot;x&amp;y&quot;)&lt;/script&gt;&#39;");
    EXPECT_EQ(escape_html("caf\xc3\xa9 \xe2\x86\x92 ok\n\t"), "caf\xc3\xa9 \xe2\x86\x92 ok\n\t");
}

TEST(ReportEscape, ControlCharactersAndBrokenUtf8BecomeReplacement) {
    const std::string rep = "\xEF\xBF\xBD";
    EXPECT_EQ(escape_html(std::string("a\0b", 3)), "a" + rep + "b");
    EXPECT_EQ(escape_html("x\x1by"), "x" + rep + "y");
    EXPECT_EQ(escape_html("\xff"), rep);
    EXPECT_EQ(escape_html("\xc3"), rep);            // truncated sequence
    EXPECT_EQ(escape_html("\xc0\xaf"), rep + rep);  // overlong '/'
    EXPECT_EQ(escape_html("\xed\xa0\x80"), rep + rep + rep);  // surrogate
}

TEST(ReportSubsample, AllWhenSmall) {
    const auto idx = subsample_indices(10, 5000);
    ASSERT_EQ(idx.size(), 10u);
    for (std::size_t i = 0; i < 10; ++i) EXPECT_EQ(idx[i], i);
}

TEST(ReportSubsample, DeterministicSortedAndKeepsRequested) {
    const std::vector<std::size_t> keep{3, 19999, 777, 3};
    const auto a = subsample_indices(20000, 5000, 42, keep);
    const auto b = subsample_indices(20000, 5000, 42, keep);
    EXPECT_EQ(a, b);
    ASSERT_EQ(a.size(), 5000u);
    EXPECT_TRUE(std::is_sorted(a.begin(), a.end()));
    EXPECT_EQ(std::adjacent_find(a.begin(), a.end()), a.end());
    for (std::size_t k : {3u, 19999u, 777u}) EXPECT_TRUE(std::binary_search(a.begin(), a.end(), k)) << k;
    EXPECT_NE(a, subsample_indices(20000, 5000, 43, keep));
    // Spread over the whole range, not the first 5000.
    EXPECT_GT(a[a.size() / 2], 7000u);
    EXPECT_LT(a[a.size() / 2], 13000u);
}

TEST(ReportChart, ElementsAndSkippedValues) {
    Chart c;
    c.id = "t";
    c.title = "a <title>";
    c.x = Axis{ScaleKind::kLinear, 0, 10, "x & y"};
    c.y = Axis{ScaleKind::kLog, 1, 1000, "count"};
    Bars b;
    b.x0 = {0, 1, 2, 3};
    b.x1 = {1, 2, 3, 4};
    b.y = {5, 0, 50, 500};  // 0 cannot be drawn on a log axis: skipped
    c.bars.push_back(b);
    Line l;
    l.name = "series <1>";
    l.x = {0, 1, 2, 3};
    l.y = {1, std::nan(""), 10, 100};  // breaks into two pieces
    c.lines.push_back(l);
    Points p;
    p.x = {1, 2, 3};
    p.y = {10, -1, 20};  // -1 skipped on the log axis
    c.points.push_back(p);
    const std::string svg = c.render();
    EXPECT_EQ(svg.rfind("<svg id=\"t\"", 0), 0u);
    EXPECT_EQ(count(svg, "<circle"), 2u);
    // background + clip rect + 3 bars + legend box + legend swatch? (lines use a line swatch)
    EXPECT_EQ(count(svg, "<rect"), 2u + 3u + 1u);
    EXPECT_NE(svg.find("a &lt;title&gt;"), std::string::npos);
    EXPECT_NE(svg.find("x &amp; y"), std::string::npos);
    EXPECT_NE(svg.find("series &lt;1&gt;"), std::string::npos);
    EXPECT_EQ(svg.find("<title>"), std::string::npos);
    // The line restarts after the NaN: two move-to commands in its path.
    const auto d = svg.find("fill=\"none\" stroke=\"#4e79a7\"");
    ASSERT_NE(d, std::string::npos);
    const auto path_start = svg.rfind("<path d=\"", d);
    EXPECT_EQ(count(svg.substr(path_start, d - path_start), "M"), 2u);
    EXPECT_EQ(c.render(), svg);  // deterministic
}

TEST(ReportTextMarks, Boundaries) {
    const std::string ref = "The answer is forty two, as everyone knows.";
    // n_pre = 0 and n_pre = L are exact without any text comparison.
    EXPECT_EQ(match_boundary(ref, std::nullopt, 0, 10).bytes, 0u);
    auto whole = match_boundary(ref, std::nullopt, 10, 10);
    EXPECT_EQ(whole.bytes, ref.size());
    EXPECT_EQ(whole.method, MatchMethod::kWhole);
    // With the generated text: its common prefix with the reference.
    auto gen = match_boundary(ref, std::string("The answer is forty three."), 4, 10);
    EXPECT_EQ(gen.method, MatchMethod::kGenerated);
    EXPECT_TRUE(gen.exact);
    EXPECT_EQ(ref.substr(0, gen.bytes), "The answer is forty t");
    // Without: the token share of the characters, snapped to a space, marked approximate.
    auto approx = match_boundary(ref, std::nullopt, 5, 10);
    EXPECT_EQ(approx.method, MatchMethod::kProportion);
    EXPECT_FALSE(approx.exact);
    EXPECT_EQ(ref.substr(0, approx.bytes), "The answer is forty two,");
    // Never inside a UTF-8 sequence: e9 vs ea share the lead byte c3.
    auto utf = match_boundary("caf\xc3\xa9!", std::string("caf\xc3\xaa"), 1, 3);
    EXPECT_EQ(utf.bytes, 3u);
    EXPECT_EQ(utf8_length("caf\xc3\xa9"), 4u);
    EXPECT_EQ(utf8_prefix_bytes("caf\xc3\xa9x", 4), 5u);
}

}  // namespace

namespace {
TEST(ReportTicks, IntegerAxesNeverStepBelowOne) {
    // 1..5 would step by 0.5 (1, 1.5, ..., 5); whole-number quantities step by 1.
    EXPECT_THAT(values(linear_ticks(1, 5, 10)), ::testing::ElementsAre(1, 1.5, 2, 2.5, 3, 3.5, 4, 4.5, 5));
    EXPECT_THAT(values(linear_ticks(1, 5, 10, 1)), ::testing::ElementsAre(1, 2, 3, 4, 5));
}
}  // namespace
