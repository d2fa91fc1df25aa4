// The report's section "What does the mitigation buy?" (METHOD M12), from
// AnalysisResult::mitigation.
#include <fmt/format.h>

#include <cmath>

#include "report/report-sections.h"
#include "report/svg.h"

namespace memskew {

namespace {

std::string num(double v, int digits = 3) {
    return std::isfinite(v) ? report::format_number(v, digits) : std::string("n/a");
}
std::string pct(double f) { return std::isfinite(f) ? report::format_number(100 * f, 3) + "%" : std::string("n/a"); }

class Section : HtmlSection {
public:
    using HtmlSection::HtmlSection;

    std::string render() {
        const auto& m = r_.mitigation;
        if (!m.skipped.empty() && m.applied.empty()) return {};
        s_ += "<h2 id=\"mitigation\">What does the mitigation buy? Greedy outputs with and without it</h2>\n";
        if (!m.skipped.empty()) {
            note("The outputs cannot be compared: " + m.skipped + ".");
            return s_;
        }
        s_ += "<table id=\"table-mitigation\">\n<tr><th>outputs</th><th class=\"num\">samples</th><th "
              "class=\"num\">mean n_pre</th><th class=\"num\">p99</th><th class=\"num\">max</th><th "
              "class=\"num\">verbatim</th><th class=\"num\">approximate</th><th class=\"num\">longest common "
              "substring</th><th class=\"num\">ROUGE-L</th><th class=\"num\">mean log-prob</th></tr>\n";
        row("greedy", m.greedy);
        if (m.guarded) row("greedy with the guard", *m.guarded);
        s_ += "</table>\n";
        std::string text =
            "n_pre of each output against its reference (greedy decoding, so equal to the teacher-forced n_pre when "
            "unguarded); approximate: outputs within 10% normalised edit distance of the reference (Ippolito et al. "
            "2022); mean log-prob: the model's own log-probability of the tokens it emitted.";
        if (m.guarded) {
            text += fmt::format(" The guard blocked {} steps; its cost is {} nats per emitted token.", m.blocked_steps,
                                num(m.greedy.mean_logprob - m.guarded->mean_logprob));
            if (m.guard_test && m.guard_test->wilcoxon)
                text += fmt::format(" Paired Wilcoxon test on the {} samples: p = {}, mean difference {} tokens.",
                                    m.guard_test->n_shared, report::format_p_value(m.guard_test->wilcoxon->p_value),
                                    num(m.guard_test->mean_difference));
            text += " A guard stops exact n-gram copies, not near-verbatim ones: compare the approximate column.";
        }
        note(text);
        return s_;
    }

private:
    void row(const std::string& name, const OutputSummary& o) {
        s_ += fmt::format("<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>"
                          "<td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td "
                          "class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>\n",
                          h(name), o.n, num(o.mean_n_pre), num(o.p99_n_pre), num(o.max_n_pre), o.n_exact,
                          pct(o.approx_share), num(o.mean_lcs), num(o.mean_rouge_l), num(o.mean_logprob));
    }
};

}  // namespace

std::string render_mitigation_section(const AnalysisResult& result, const ReportInputs& inputs,
                                      const ReportParams& params) {
    return Section(result, inputs, params).render();
}

}  // namespace memskew
