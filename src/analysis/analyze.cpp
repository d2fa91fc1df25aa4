// `memskew analyze`: METHOD M5–M8 and M11 over a results store's runs (M9 in
// predictors.cpp, JSON and terminal output in analysis-json.cpp). The numbers
// come from the stats layer; this file picks the data, checks preconditions
// and turns "cannot compute" into a null with a reason instead of an error.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <numeric>
#include <unordered_map>

#include <fmt/format.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "analysis/analysis-impl.h"
#include "memskew/error.h"
#include "util/stopwatch.h"

namespace memskew {

namespace {

using analysis_detail::PredictorInput;
using analysis_detail::PredictorSample;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// " (step S, epoch E)" or "" for a run that is no checkpoint.
std::string describe_checkpoint_suffix(const RunInfo& r) {
    std::string s;
    if (r.spec.checkpoint_step) s += fmt::format("step {}", *r.spec.checkpoint_step);
    if (r.spec.checkpoint_epoch) s += fmt::format("{}epoch {}", s.empty() ? "" : ", ", *r.spec.checkpoint_epoch);
    return s.empty() ? s : " (" + s + ")";
}

// The samples of the selected run that enter the statistics.
struct Prepared {
    std::vector<std::size_t> column;  // index into RunColumns
    std::vector<int64_t> n_pre;
    std::vector<int64_t> lengths;     // empty when some sample has no usable L
    std::vector<uint8_t> exact;       // empty: derived from lengths
    std::vector<double> n_pre_d;
};

Prepared prepare(const RunColumns& c, AnalysisResult& result) {
    Prepared p;
    const std::size_t n = c.size();
    bool all_lengths = true, all_exact = true;
    const std::vector<double>* exact_col = nullptr;
    if (std::find(c.metric_names.begin(), c.metric_names.end(), "exact") != c.metric_names.end())
        exact_col = &c.metric("exact");
    int64_t bad_length = 0;
    for (std::size_t i = 0; i < n; ++i) {
        if (c.n_pre[i] < 0) {
            ++result.n_samples_without_n_pre;
            continue;
        }
        p.column.push_back(i);
        p.n_pre.push_back(c.n_pre[i]);
        // L of the prefix match; the reference token count when the column is NULL.
        int64_t L = c.length.size() == n ? c.length[i] : -1;
        if (L < 1) L = c.reference_tokens.size() == n ? c.reference_tokens[i] : -1;
        if (L < 1 || L < c.n_pre[i]) {
            all_lengths = false;
            ++bad_length;
        }
        p.lengths.push_back(L);
        const double e = exact_col ? (*exact_col)[i] : kNaN;
        if (std::isnan(e)) all_exact = false;
        p.exact.push_back(e > 0 ? 1 : 0);
    }
    if (!all_lengths) {
        p.lengths.clear();
        result.warnings.push_back(fmt::format(
            "{} samples have no usable reference length (L < 1 or L < n_pre): n_pre / L and the "
            "per-position analysis (M7) are left out",
            bad_length));
    }
    if (!all_exact) p.exact.clear();
    p.n_pre_d.assign(p.n_pre.begin(), p.n_pre.end());
    return p;
}

// ---- M5 ---------------------------------------------------------------------

void shape_reasons(const stats::Shape& s, std::size_t n, const std::string& prefix,
                   std::map<std::string, std::string>& reasons) {
    auto note = [&](const char* field, double v, std::size_t need) {
        if (!std::isnan(v)) return;
        reasons[prefix + field] = n < need ? fmt::format("needs at least {} samples", need)
                                           : std::string("the values are all equal (zero variance)");
    };
    note("skewness", s.skewness, 1);
    note("skewness_adjusted", s.skewness_adjusted, 3);
    note("kurtosis", s.kurtosis, 1);
    note("kurtosis_adjusted", s.kurtosis_adjusted, 4);
}

DistributionSection compute_distribution(const Prepared& p, const RunColumns& c, const AnalyzeParams& params) {
    DistributionSection d;
    stats::NPreSummaryParams sp;
    sp.summary.top_k = params.top_k;
    d.summary = stats::summarize_n_pre(p.n_pre, p.lengths, p.exact, sp);
    for (const auto& t : d.summary.absolute.top) d.top.push_back({c.sample_id[p.column[t.index]], t.value});
    for (const auto& t : d.summary.normalized.top)
        d.top_normalized.push_back({c.sample_id[p.column[t.index]], t.value});
    d.total_memorized_tokens = std::accumulate(p.n_pre.begin(), p.n_pre.end(), int64_t{0});
    shape_reasons(d.summary.absolute.shape, p.n_pre.size(), "", d.null_reasons);
    if (p.lengths.empty())
        d.null_reasons["normalized"] = "some samples have no reference length";
    else
        shape_reasons(d.summary.normalized.shape, p.n_pre.size(), "normalized.", d.null_reasons);
    return d;
}

// ---- M6 ---------------------------------------------------------------------

SamplingSection compute_sampling(const Prepared& p, const AnalyzeParams& params) {
    SamplingSection s;
    const int64_t M = static_cast<int64_t>(p.n_pre.size());
    s.n_samples = M;
    for (int64_t k : params.miss_top_k) {
        if (k < 1) throw InvalidInput(fmt::format("top-k size for P(miss) must be >= 1, got {}", k));
        if (k > M) {
            s.null_reasons[fmt::format("k={}", k)] = fmt::format("needs at least {} samples", k);
            continue;
        }
        for (double f : params.subset_fractions) {
            if (!(f > 0 && f <= 1)) throw InvalidInput(fmt::format("subset fraction {} must lie in (0, 1]", f));
            const int64_t z = std::clamp<int64_t>(static_cast<int64_t>(std::ceil(f * M - 1e-9)), 1, M);
            s.p_miss.push_back({f, z, k, stats::p_miss_top_k(M, k, z)});
        }
        for (double delta : params.miss_deltas) {
            const int64_t z = stats::min_subset_size(M, k, delta);
            s.needed.push_back({k, delta, z, static_cast<double>(z) / M});
        }
    }
    if (M < 2) {
        s.null_reasons["bootstrap"] = "needs at least 2 samples";
    } else if (params.n_bootstrap == 0) {
        s.null_reasons["bootstrap"] = "disabled (--bootstrap 0)";
    } else {
        stats::BootstrapParams bp;
        bp.n_resamples = params.n_bootstrap;
        bp.seed = params.seed;
        bp.confidence = params.confidence;
        bp.quantile = 0.99;
        s.bootstrap = stats::bootstrap(p.n_pre_d, bp);
    }
    return s;
}

// ---- M7 ---------------------------------------------------------------------

void compute_hazard(const Prepared& p, const AnalyzeParams& params, HazardSection& h) {
    if (p.lengths.empty()) {
        h.skipped = "needs the reference length of every sample";
        return;
    }
    stats::HazardParams hp;
    hp.confidence = params.confidence;
    h.positions = stats::empirical_hazard(p.n_pre, p.lengths, hp);
    if (!params.hazard_fits) {
        h.null_reasons["fits"] = "disabled";
    } else if (p.n_pre.size() < 2) {
        h.null_reasons["fits"] = "needs at least 2 samples";
    } else {
        h.geometric = stats::fit_geometric(p.n_pre, p.lengths);
        h.linear_hazard = stats::fit_linear_hazard(p.n_pre, p.lengths);
    }
}

// ---- M8 ---------------------------------------------------------------------

CorrelationSection compute_correlations(const Prepared& p, const RunColumns& c) {
    CorrelationSection out;
    if (p.n_pre.size() < 2) {
        out.skipped = "needs at least 2 samples";
        return out;
    }
    std::vector<double> x, y;
    for (std::size_t m = 0; m < c.metric_names.size(); ++m) {
        const std::string& name = c.metric_names[m];
        if (name == "n_pre") continue;
        const std::vector<double>& col = c.metric_values[m];
        x.clear();
        y.clear();
        double lo = std::numeric_limits<double>::infinity(), hi = -lo;
        for (std::size_t k = 0; k < p.column.size(); ++k) {
            const double v = col[p.column[k]];
            if (std::isnan(v)) continue;
            x.push_back(p.n_pre_d[k]);
            y.push_back(v);
            if (std::isfinite(v)) {
                lo = std::min(lo, v);
                hi = std::max(hi, v);
            }
        }
        if (y.empty()) {
            out.skipped_columns.push_back(name);
            continue;
        }
        if (lo == hi && std::all_of(y.begin(), y.end(), [&](double v) { return v == lo; })) {
            // Constant (e.g. length with one L): rho is undefined; skip the ranking.
            CorrelationEntry e;
            e.metric = name;
            e.n_used = y.size();
            e.spearman.statistic = e.spearman.p_value = kNaN;
            e.spearman.n = y.size();
            e.null_reason = "the metric is constant over the samples used";
            out.entries.push_back(std::move(e));
            continue;
        }
        // Spearman only sees ranks: -inf (e.g. log_p_z of an unreachable
        // reference) ranks below every finite value and +inf above, so they are
        // replaced by values just outside the finite range (a monotone map).
        if (!std::isfinite(lo)) lo = hi = 0;
        for (double& v : y) {
            if (v == -std::numeric_limits<double>::infinity()) v = lo - 1;
            if (v == std::numeric_limits<double>::infinity()) v = hi + 1;
        }
        CorrelationEntry e;
        e.metric = name;
        e.n_used = y.size();
        if (y.size() < 2) {
            e.spearman.statistic = e.spearman.p_value = kNaN;
            e.spearman.n = y.size();
            e.null_reason = "needs at least 2 samples with this metric";
        } else {
            e.spearman = stats::spearman(x, y);
            if (std::isnan(e.spearman.statistic))
                e.null_reason = "constant over the samples used (n_pre or the metric)";
            else if (std::isnan(e.spearman.p_value))
                e.null_reason = "p-value needs at least 3 samples";
        }
        out.entries.push_back(std::move(e));
    }
    return out;
}

// ---- token stream: M7 independence and M9 inputs in one pass ------------------

void stream_tokens(const RunInput& run, const Prepared& p, const AnalyzeParams& params, AnalysisResult& result,
                   bool want_independence, bool want_predictors) {
    HazardSection& h = result.hazard;
    const RunColumns& c = run.columns;
    std::unordered_map<std::string_view, uint32_t> index;  // sample id -> position in p
    index.reserve(p.column.size());
    for (std::size_t k = 0; k < p.column.size(); ++k) index.emplace(c.sample_id[p.column[k]], k);

    std::vector<std::vector<uint8_t>> flags(want_independence ? p.column.size() : 0);
    std::vector<uint8_t> seen(p.column.size(), 0);
    PredictorInput pred;
    pred.prompt_key_kind = "prompt_text";
    const bool have_prompts = run.prompts.size() == c.size();
    int64_t n_seen = 0;
    run.tokens([&](const std::string& id, const StoredTokens& t) {
        const auto it = index.find(id);
        if (it == index.end()) return;
        const uint32_t k = it->second;
        if (seen[k]) return;
        seen[k] = 1;
        ++n_seen;
        const int64_t n_pre = p.n_pre[k];
        const std::size_t L = t.match.size();
        // The first mismatch must sit at n_pre + 1 (or nowhere when n_pre = L).
        bool consistent = static_cast<int64_t>(L) >= n_pre;
        for (int64_t j = 0; consistent && j < n_pre; ++j) consistent = t.match[j] == 1;
        if (consistent && static_cast<int64_t>(L) > n_pre) consistent = t.match[n_pre] == 0;
        if (!consistent) ++h.n_match_inconsistent;
        if (want_independence) flags[k] = t.match;
        if (want_predictors && !t.reference.empty() && t.argmax.size() == t.reference.size()) {
            PredictorSample s;
            s.column = p.column[k];
            s.offset = static_cast<uint32_t>(pred.reference.size());
            s.length = static_cast<uint32_t>(t.reference.size());
            s.exact = std::equal(t.reference.begin(), t.reference.end(), t.argmax.begin());
            const std::optional<std::string>* prompt = have_prompts ? &run.prompts[s.column] : nullptr;
            if (prompt && *prompt) {
                s.has_prompt = true;
                s.prompt_key = XXH3_64bits((*prompt)->data(), (*prompt)->size());
            } else {
                // Unknown prompt: the sample is its own prompt (it shares no context).
                const std::string own = "\x01sample:" + id;
                s.prompt_key = XXH3_64bits(own.data(), own.size());
            }
            pred.reference.insert(pred.reference.end(), t.reference.begin(), t.reference.end());
            pred.argmax.insert(pred.argmax.end(), t.argmax.begin(), t.argmax.end());
            pred.samples.push_back(s);
        }
    });
    h.n_samples_with_tokens = n_seen;
    if (h.n_match_inconsistent > 0)
        result.warnings.push_back(fmt::format(
            "{} samples have a stored match array that disagrees with their n_pre", h.n_match_inconsistent));

    if (want_independence) {
        // Only samples with token arrays enter the check.
        std::vector<std::vector<uint8_t>> present;
        present.reserve(static_cast<std::size_t>(n_seen));
        std::size_t max_len = 0;
        for (std::size_t k = 0; k < flags.size(); ++k) {
            if (!seen[k]) continue;
            max_len = std::max(max_len, flags[k].size());
            present.push_back(std::move(flags[k]));
        }
        flags = {};
        if (present.size() < 2)
            h.independence_skipped = present.empty() ? "no token arrays stored for this run"
                                                     : "needs at least 2 samples with token arrays";
        else if (max_len < 2)
            h.independence_skipped = "needs references of at least 2 tokens";
        else {
            stats::IndependenceParams ip;
            ip.n_permutations = params.n_permutations;
            ip.seed = params.seed;
            h.independence = stats::independence_check(present, ip);
        }
    }
    if (want_predictors) {
        if (!have_prompts || pred.samples.empty()) {
            result.predictors.prompt_key = pred.prompt_key_kind;
            result.predictors.skipped = pred.samples.empty() ? "no token arrays stored for this run"
                                                             : "prompt texts are not available";
        } else {
            result.predictors = analysis_detail::compute_predictors(pred, c, params.top_k);
            if (result.predictors.n_samples_without_prompt == result.predictors.n_samples)
                result.predictors.skipped =
                    "no prompt text stored (probe without keeping texts): prompts cannot be grouped";
        }
    }
}

}  // namespace

// ---- M11 ----------------------------------------------------------------------

bool checkpoint_before(const RunInfo& a, const RunInfo& b) {
    // Runs with a step first, by step; then epoch; then run id.
    const auto key = [](const RunInfo& r) {
        return std::make_tuple(!r.spec.checkpoint_step.has_value(), r.spec.checkpoint_step.value_or(0),
                               !r.spec.checkpoint_epoch.has_value(), r.spec.checkpoint_epoch.value_or(0),
                               r.run_id);
    };
    return key(a) < key(b);
}

std::size_t last_checkpoint_index(const std::vector<RunInfo>& runs) {
    std::size_t selected = 0;
    for (std::size_t i = 1; i < runs.size(); ++i)
        if (checkpoint_before(runs[selected], runs[i])) selected = i;
    return selected;
}

CheckpointSummary summarize_checkpoint(const RunInfo& info, const RunColumns& c) {
    CheckpointSummary s;
    s.run_id = info.run_id;
    s.step = info.spec.checkpoint_step;
    s.epoch = info.spec.checkpoint_epoch;
    s.train_loss = info.spec.train_loss;
    s.train_loss_last_step = info.spec.train_loss_last_step;
    std::vector<double> v;
    for (std::size_t i = 0; i < c.size(); ++i) {
        if (c.n_pre[i] < 0) continue;
        v.push_back(static_cast<double>(c.n_pre[i]));
        const int64_t L = c.length.size() == c.size() && c.length[i] >= 1 ? c.length[i] : c.reference_tokens[i];
        if (c.n_pre[i] == L) ++s.n_exact;
    }
    s.n_samples = static_cast<int64_t>(v.size());
    if (v.empty()) return s;
    stats::SummaryParams sp;
    sp.quantiles = {0.99};
    sp.top_k = 0;
    const stats::DistributionSummary d = stats::summarize(v, sp);
    s.mean = d.mean;
    s.p99 = d.quantile_values[0];
    s.max = d.max;
    return s;
}

PairedComparison compare_checkpoints(const RunInfo& a_info, const RunColumns& a, const RunInfo& b_info,
                                     const RunColumns& b) {
    PairedComparison pc;
    pc.run_a = a_info.run_id;
    pc.run_b = b_info.run_id;
    std::unordered_map<std::string_view, int64_t> in_a;
    in_a.reserve(a.size());
    for (std::size_t i = 0; i < a.size(); ++i)
        if (a.n_pre[i] >= 0) in_a.emplace(a.sample_id[i], a.n_pre[i]);
    std::vector<double> xa, xb;
    double sum_a = 0, sum_b = 0;
    for (std::size_t i = 0; i < b.size(); ++i) {
        if (b.n_pre[i] < 0) continue;
        const auto it = in_a.find(b.sample_id[i]);
        if (it == in_a.end()) continue;
        xa.push_back(static_cast<double>(it->second));
        xb.push_back(static_cast<double>(b.n_pre[i]));
        sum_a += xa.back();
        sum_b += xb.back();
    }
    pc.n_shared = static_cast<int64_t>(xa.size());
    if (xa.empty()) {
        pc.skipped = "no shared samples (no sample id with n_pre in both runs)";
        return pc;
    }
    const double n = static_cast<double>(xa.size());
    pc.mean_a = sum_a / n;
    pc.mean_b = sum_b / n;
    pc.mean_difference = (sum_b - sum_a) / n;
    if (std::equal(xa.begin(), xa.end(), xb.begin())) {
        pc.skipped = fmt::format("n_pre is equal in both runs on all {} shared samples (no non-zero difference)",
                                 xa.size());
        return pc;
    }
    // x = later run, y = earlier run: z > 0 when n_pre grew.
    try {
        pc.wilcoxon = stats::wilcoxon(xb, xa);
    } catch (const Error& e) {
        pc.skipped = e.message();
    }
    return pc;
}

namespace {

TrendSection compute_trends(const std::vector<RunInput>& runs) {
    TrendSection t;
    std::vector<const RunInput*> order;
    for (const auto& r : runs) order.push_back(&r);
    std::stable_sort(order.begin(), order.end(),
                     [](const RunInput* a, const RunInput* b) { return checkpoint_before(a->info, b->info); });
    for (const RunInput* r : order) t.checkpoints.push_back(summarize_checkpoint(r->info, r->columns));
    if (runs.size() < 2) {
        t.skipped = "one run in the store: no checkpoints to compare";
        return t;
    }
    const std::size_t n = order.size();
    for (std::size_t i = 0; i < n; ++i) {
        for (std::size_t j = i + 1; j < n; ++j) {
            const bool consecutive = j == i + 1, first_last = i == 0 && j == n - 1;
            if (n > 10 && !consecutive && !first_last) continue;
            PairedComparison pc =
                compare_checkpoints(order[i]->info, order[i]->columns, order[j]->info, order[j]->columns);
            pc.relation = consecutive ? "consecutive" : first_last ? "first_vs_last" : "pair";
            t.comparisons.push_back(std::move(pc));
        }
    }
    return t;
}

// ---- findings ---------------------------------------------------------------------

std::string percent(double f) {
    if (!std::isfinite(f)) return "n/a";
    const double pc = 100 * f;
    if (pc != 0 && std::fabs(pc) < 0.1) return fmt::format("{:.2g}%", pc);
    return fmt::format("{:.1f}%", pc);
}

void write_findings(AnalysisResult& r) {
    const auto& d = r.distribution;
    const auto& a = d.summary.absolute;
    const std::size_t M = a.count;
    const std::size_t n_top = std::max<std::size_t>(1, static_cast<std::size_t>(std::ceil(0.01 * M - 1e-9)));
    if (d.total_memorized_tokens == 0) {
        r.findings.push_back(fmt::format(
            "No sample is memorized: the model's greedy output leaves every one of the {} references at its "
            "first token (n_pre = 0 everywhere).",
            M));
    } else {
        r.findings.push_back(fmt::format(
            "The top 1% of samples ({} of {}) hold {} of all memorized tokens; {} samples are reproduced "
            "verbatim; max n_pre = {}{} while the mean is {:.2f} and the median {:g}.",
            n_top, M, percent(a.top_share), d.summary.n_exact, a.max,
            d.top.empty() ? std::string() : fmt::format(" ({})", d.top.front().sample_id), a.mean, a.median));
    }
    for (const auto& sz : r.sampling.needed) {
        if (sz.k == 10 && sz.delta == 0.05) {
            r.findings.push_back(fmt::format(
                "Auditing a random subset needs {} samples ({} of the data) to catch one of the 10 most "
                "memorized with 95% confidence.",
                sz.subset_size, percent(sz.fraction)));
        }
    }
    const auto& h = r.hazard;
    if (h.geometric && h.linear_hazard) {
        const double d_aic = h.geometric->aic - h.linear_hazard->aic;
        r.findings.push_back(fmt::format(
            "Per-token recall: a constant p = {:.3f} (geometric) {} a rising p_j = {:.3f} + {:.4f} j "
            "(linear hazard), AIC difference {:.1f}.",
            h.geometric->params[0], d_aic > 2 ? "fits worse than" : d_aic < -2 ? "fits better than" : "fits as well as",
            h.linear_hazard->params[0], h.linear_hazard->params[1], std::fabs(d_aic)));
    }
    const auto& p = r.predictors;
    if (p.skipped.empty() && p.n_diverged > 0 && p.n_shared_prompts > 0) {
        r.findings.push_back(fmt::format(
            "{} of {} divergences are data-ambiguous (the reference token is not the majority continuation "
            "among samples sharing its context); {} are the model's.",
            p.divergence.data_ambiguous, p.n_diverged, p.divergence.model));
    }
    const auto& mi = r.mitigation;
    if (mi.guarded) {
        const auto& u = mi.greedy;
        const auto& g = *mi.guarded;
        r.findings.push_back(fmt::format(
            "The decoding guard takes the greedy outputs' max n_pre from {:g} to {:g} and the verbatim ones from {} to "
            "{}; {} of the guarded outputs are within 10% edit distance of their reference ({} unguarded: a guard "
            "stops exact copies, not near-verbatim ones). It blocked {} steps at a cost of {:.3f} nats of mean "
            "log-probability per token.",
            u.max_n_pre, g.max_n_pre, u.n_exact, g.n_exact, percent(g.approx_share), percent(u.approx_share),
            mi.blocked_steps, u.mean_logprob - g.mean_logprob));
    }
    const auto& sm = r.similarity;
    if (!sm.claim_text.empty()) r.findings.push_back(sm.claim_text);
    if (sm.triage.skipped.empty() && !sm.triage.ks.empty() && !sm.triage.signals.empty()) {
        const std::size_t i = sm.triage.ks.size() - 1;
        const TriageSignal* best = nullptr;
        for (const auto& x : sm.triage.signals)
            if (!best || x.points[i].precision > best->points[i].precision) best = &x;
        r.findings.push_back(fmt::format(
            "Of the cheap signals, {} ({} is riskier) finds the tail best: {} of its top {} are among the {} "
            "samples with n_pre >= {} (a random pick: {}).",
            best->signal, best->direction, percent(best->points[i].precision), sm.triage.ks[i],
            sm.triage.tail_sizes[i], sm.triage.tail_thresholds[i], percent(sm.triage.random_precision[i])));
    }
    const auto& t = r.trends;
    if (t.checkpoints.size() >= 2) {
        const auto& f = t.checkpoints.front();
        const auto& l = t.checkpoints.back();
        auto loss = [](const std::optional<double>& v) { return v ? fmt::format("{:.3g}", *v) : std::string("?"); };
        // The epoch's mean training loss; runs from a store that recorded only
        // the last step's loss say so.
        std::string loss_text;
        if (f.train_loss || l.train_loss)
            loss_text = fmt::format("the mean training loss of the epoch goes {} -> {}", loss(f.train_loss),
                                    loss(l.train_loss));
        else if (f.train_loss_last_step || l.train_loss_last_step)
            loss_text = fmt::format("the last step's training loss goes {} -> {} (no epoch mean recorded)",
                                    loss(f.train_loss_last_step), loss(l.train_loss_last_step));
        else
            loss_text = "the training loss is not recorded";
        r.findings.push_back(fmt::format("Across {} checkpoints max n_pre goes {:g} -> {:g} and p99 {:g} -> {:g} while {}.",
                                         t.checkpoints.size(), f.max, l.max, f.p99, l.p99, loss_text));
    }
}

}  // namespace

AnalysisResult analyze_runs(const std::vector<RunInput>& runs, std::size_t selected, const AnalyzeParams& params) {
    if (runs.empty()) throw InvalidInput("analyze: no runs to analyse", "the store holds no runs");
    if (selected >= runs.size())
        throw InvalidInput(fmt::format("analyze: run index {} out of range ({} runs)", selected, runs.size()));
    const RunInput& run = runs[selected];
    Stopwatch timer;
    AnalysisResult r;
    r.run = run.info;
    r.n_runs = static_cast<int64_t>(runs.size());
    r.n_samples = static_cast<int64_t>(run.columns.size());
    r.seed = params.seed;
    const std::string what = fmt::format("run {}{}", run.info.run_id, describe_checkpoint_suffix(run.info));
    if (run.columns.size() == 0)
        throw InvalidInput(fmt::format("{} holds no samples: nothing to analyse", what),
                           "was the probe interrupted before its first batch? re-run `memskew probe --resume`");
    const Prepared p = prepare(run.columns, r);
    if (p.n_pre.empty())
        throw InvalidInput(fmt::format("{}: none of its {} samples has an n_pre value", what, run.columns.size()));
    if (p.n_pre.size() == 1)
        r.warnings.push_back("one sample: statistics that need more (shape, bootstrap, fits, tests) are null");

    r.distribution = compute_distribution(p, run.columns, params);
    r.seconds["m5"] = timer.lap();
    r.sampling = compute_sampling(p, params);
    r.seconds["m6"] = timer.lap();
    compute_hazard(p, params, r.hazard);
    r.seconds["m7_fits"] = timer.lap();
    r.correlations = compute_correlations(p, run.columns);
    r.seconds["m8"] = timer.lap();

    const bool want_independence = params.n_permutations > 0 && r.hazard.skipped.empty();
    const bool want_predictors = params.predictors;
    if (!run.tokens) {
        if (want_independence) r.hazard.independence_skipped = "no token arrays available";
        if (want_predictors) r.predictors.skipped = "no token arrays available";
    } else if (want_independence || want_predictors) {
        stream_tokens(run, p, params, r, want_independence, want_predictors);
    }
    if (params.n_permutations == 0) r.hazard.independence_skipped = "disabled (0 permutations)";
    if (!r.hazard.skipped.empty() && r.hazard.independence_skipped.empty())
        r.hazard.independence_skipped = r.hazard.skipped;
    if (!want_predictors) r.predictors.skipped = "disabled";
    r.seconds["tokens_m7_m9"] = timer.lap();

    if (params.similarity) {
        analysis_detail::NPreView view{p.column, p.n_pre, {}};
        view.exact = p.exact;
        if (view.exact.empty()) {
            view.exact.assign(p.n_pre.size(), 0);
            if (!p.lengths.empty())
                for (std::size_t k = 0; k < p.n_pre.size(); ++k) view.exact[k] = p.n_pre[k] == p.lengths[k];
        }
        r.similarity = analysis_detail::compute_similarity_section(runs, selected, view, r.predictors, params);
    } else {
        r.similarity.skipped = "disabled";
        r.similarity.triage.skipped = "disabled";
    }
    r.mitigation = analysis_detail::compute_mitigation(run);
    r.seconds["m10_m12"] = timer.lap();

    if (params.trends) {
        r.trends = compute_trends(runs);
    } else {
        r.trends.skipped = "disabled";
    }
    r.seconds["m11"] = timer.lap();
    write_findings(r);
    return r;
}

}  // namespace memskew
