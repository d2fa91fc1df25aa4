// The HTML report page: every chart section present with non-empty SVG,
// notes where data is missing, escaping of sample texts, redaction,
// subsampling note, determinism, and no external resources.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>

#include "memskew/error.h"
#include "memskew/report.h"
#include "test-report-util.h"

using namespace memskew;
using memskew::test::make_report_fixture;

namespace {

std::size_t count(const std::string& s, const std::string& what) {
    std::size_t n = 0;
    for (auto p = s.find(what); p != std::string::npos; p = s.find(what, p + 1)) ++n;
    return n;
}

// The <svg> element with this id, or "" when absent.
std::string svg_of(const std::string& page, const std::string& id) {
    const auto start = page.find("<svg id=\"" + id + "\"");
    if (start == std::string::npos) return "";
    const auto end = page.find("</svg>", start);
    return page.substr(start, end - start);
}

// Drawing elements of a chart beyond its frame (background and clip rects).
std::size_t n_marks(const std::string& svg) {
    return count(svg, "<path") + count(svg, "<rect") - 2 + count(svg, "<circle");
}

TEST(Report, EveryChartHasContent) {
    const auto f = make_report_fixture(400, true, 4);
    const std::string page = render_report(f.result, f.inputs);
    EXPECT_EQ(page.rfind("<!DOCTYPE html>", 0), 0u);
    struct Expect {
        const char* id;
        std::size_t min_marks;
    };
    for (const Expect& e : {Expect{"chart-histogram", 6}, Expect{"chart-ccdf", 2}, Expect{"chart-hazard", 4},
                            Expect{"chart-scatter-rouge-l", 300}, Expect{"chart-scatter-loss", 300},
                            Expect{"chart-scatter-min-k", 300}, Expect{"chart-sampling-miss", 3},
                            Expect{"chart-trend-tail", 3}, Expect{"chart-trend-loss", 1}}) {
        const std::string svg = svg_of(page, e.id);
        ASSERT_FALSE(svg.empty()) << e.id;
        EXPECT_GE(n_marks(svg), e.min_marks) << e.id;
        EXPECT_NE(svg.find("<text"), std::string::npos) << e.id << ": no axis labels";
    }
    for (const char* id : {"finding", "table-summary", "table-thresholds", "table-fits", "table-needed", "table-top",
                           "table-checkpoints", "table-correlations"}) {
        EXPECT_NE(page.find(std::string("id=\"") + id + "\""), std::string::npos) << id;
    }
    EXPECT_EQ(count(page, "<svg"), 9u);
    // One row per top sample (default 10) plus the header.
    const auto table = page.substr(page.find("id=\"table-top\""));
    EXPECT_EQ(count(table.substr(0, table.find("</table>")), "<tr>"), 11u);
}

TEST(Report, FindingSentence) {
    const auto f = make_report_fixture(400, true);
    const std::string page = render_report(f.result, f.inputs);
    const auto& a = f.result.distribution.summary.absolute;
    EXPECT_NE(page.find("The top 1% of samples (4 of 400) hold <b>"), std::string::npos);
    EXPECT_NE(page.find(fmt::format("the longest reproduced prefix is <b>{} tokens</b>",
                                    static_cast<int64_t>(a.max))),
              std::string::npos);
    EXPECT_NE(page.find("Memorization is highly skewed (Gini 0.7)."), std::string::npos);
}

TEST(Report, WithoutGenerationSaysHowToGetRougeL) {
    const auto f = make_report_fixture(300, false);
    const std::string page = render_report(f.result, f.inputs);
    EXPECT_TRUE(svg_of(page, "chart-scatter-rouge-l").empty());
    EXPECT_NE(page.find("Run <code>memskew probe --generate</code> to get ROUGE-L"), std::string::npos);
    EXPECT_FALSE(svg_of(page, "chart-scatter-loss").empty());
    // One run: the trend section explains instead of drawing.
    EXPECT_TRUE(svg_of(page, "chart-trend-tail").empty());
    EXPECT_NE(page.find("This store holds one run"), std::string::npos);
    // Without generated text the prefix boundary is approximate, and says so.
    EXPECT_NE(page.find("boundary approximate"), std::string::npos);
}

TEST(Report, SampleTextsAreEscaped) {
    const auto f = make_report_fixture(200, true);
    const std::string page = render_report(f.result, f.inputs);
    EXPECT_NE(page.find("PROMPT-TEXT-"), std::string::npos);
    EXPECT_NE(page.find("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;quoted&quot;"), std::string::npos);
    EXPECT_EQ(page.find("<script"), std::string::npos);
    // The generated text gives an exact boundary and its continuation is shown.
    EXPECT_NE(page.find("boundary from the generated text"), std::string::npos);
    EXPECT_NE(page.find("GENERATED-TEXT-"), std::string::npos);
}

TEST(Report, RedactionLeavesNoSampleText) {
    const auto f = make_report_fixture(200, true);
    ReportParams p;
    p.redact = true;
    const std::string page = render_report(f.result, f.inputs, p);
    for (const char* marker : {"PROMPT-TEXT", "REFERENCE-TEXT", "GENERATED-TEXT", "quick brown fox", "alert", "quoted"})
        EXPECT_EQ(page.find(marker), std::string::npos) << marker;
    // Every full text of the inputs, and every 12-character piece of one, is absent.
    for (const auto& rec : f.inputs.samples) {
        for (const auto* text : {&rec.prompt_text, &rec.reference_text, &rec.generated_text}) {
            if (!*text) continue;
            for (std::size_t i = 0; i + 12 <= (*text)->size(); i += 6)
                EXPECT_EQ(page.find((*text)->substr(i, 12)), std::string::npos) << (*text)->substr(i, 12);
        }
    }
    // Ids and hashes stand in for them.
    EXPECT_NE(page.find(f.inputs.samples[0].sample_id), std::string::npos);
    EXPECT_NE(page.find("prompt: #"), std::string::npos);
    EXPECT_FALSE(svg_of(page, "chart-histogram").empty());
}

TEST(Report, LargeRunIsSubsampledAndSaysSo) {
    const auto f = make_report_fixture(12000, true);
    ReportParams p;
    p.max_scatter_points = 5000;
    const std::string page = render_report(f.result, f.inputs, p);
    EXPECT_NE(page.find("Showing 5,000 of 12,000 samples"), std::string::npos);
    EXPECT_EQ(count(svg_of(page, "chart-scatter-loss"), "<circle"), 5000u);
    EXPECT_EQ(page, render_report(f.result, f.inputs, p));  // byte-identical
}

TEST(Report, NoExternalResources) {
    const auto f = make_report_fixture(400, true, 3);
    const std::string page = render_report(f.result, f.inputs);
    EXPECT_EQ(page.find("http://"), std::string::npos);
    EXPECT_EQ(page.find("https://"), std::string::npos);
    for (const char* tag : {"<script", "<link", "<img", "<iframe", "@import", "url(http", "src="})
        EXPECT_EQ(page.find(tag), std::string::npos) << tag;
    // Only clip-path references inside the page.
    std::regex url_re("url\\(([^)]*)\\)");
    for (auto it = std::sregex_iterator(page.begin(), page.end(), url_re); it != std::sregex_iterator(); ++it)
        EXPECT_EQ((*it)[1].str().rfind("#", 0), 0u) << (*it)[0].str();
}

TEST(Report, SkippedSectionsRenderNotes) {
    AnalysisResult r;
    r.store_path = "x.db";
    r.distribution.skipped = "no samples with n_pre";
    r.sampling.skipped = "no samples";
    r.hazard.skipped = "no lengths";
    r.trends.skipped = "one run";
    const std::string page = render_report(r, ReportInputs{});
    EXPECT_NE(page.find("No n_pre distribution could be computed: no samples with n_pre"), std::string::npos);
    EXPECT_NE(page.find("Skipped: no lengths"), std::string::npos);
    EXPECT_EQ(count(page, "<svg"), 0u);
    EXPECT_NE(page.find("</html>"), std::string::npos);
}

TEST(Report, WriteReportFailsOnBadStream) {
    const auto f = make_report_fixture(50, true);
    std::ostringstream ok;
    write_report(f.result, f.inputs, {}, ok);
    EXPECT_EQ(ok.str(), render_report(f.result, f.inputs));
    std::ostringstream bad;
    bad.setstate(std::ios::badbit);
    EXPECT_THROW(write_report(f.result, f.inputs, {}, bad), IoError);
}

}  // namespace

