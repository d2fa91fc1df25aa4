#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>

#include "cli.h"
#include "probe-options.h"
#include "memskew/error.h"
#include "memskew/analysis.h"
#include "memskew/probe.h"
#include "memskew/process-group.h"

namespace memskew::cli {

namespace {

// A progress bar on a terminal, plain lines (every ~10 s) otherwise.
class ProgressPrinter {
public:
    explicit ProgressPrinter(bool quiet) : quiet_(quiet), tty_(isatty(STDERR_FILENO)) {}
    void operator()(const ProbeProgress& p) {
        if (quiet_) return;
        const double rate = p.seconds > 0 ? p.done / p.seconds : 0.0;
        const double tok_rate = p.seconds > 0 ? p.tokens / p.seconds : 0.0;
        const double eta = rate > 0 ? (p.total - p.done) / rate : 0.0;
        const std::string run =
            p.n_runs > 1 ? fmt::format("{} ({}/{}) ", p.run_label, p.run_index + 1, p.n_runs) : std::string();
        if (tty_) {
            const int width = 30;
            const int filled = p.total ? static_cast<int>(width * p.done / p.total) : width;
            fmt::print(stderr, "\r{}[{}{}] {}/{} samples  {:.1f} samples/s  {:.0f} tok/s  ETA {:.0f}s   ", run,
                       std::string(filled, '#'), std::string(width - filled, '.'), p.done, p.total, rate, tok_rate,
                       eta);
            if (p.done == p.total) fmt::print(stderr, "\n");
        } else if (p.done == p.total || p.seconds - last_ >= 10.0 || p.run_index != last_run_) {
            if (p.run_index != last_run_) last_ = 0.0;
            last_run_ = p.run_index;
            last_ = p.seconds;
            fmt::print(stderr, "probe: {}{}/{} samples, {:.1f} samples/s, {:.0f} tokens/s, ETA {:.0f} s\n", run,
                       p.done, p.total, rate, tok_rate, eta);
        }
        std::fflush(stderr);
    }

private:
    bool quiet_, tty_;
    double last_ = 0.0;
    int64_t last_run_ = 0;
};

void print_summary(const ProbeSummary& s, bool generate) {
    fmt::print("probed {} samples in {:.1f} s ({:.1f} samples/s, {:.0f} tokens/s){}\n", s.n_probed, s.seconds,
               s.seconds > 0 ? s.n_probed / s.seconds : 0.0, s.seconds > 0 ? s.tokens / s.seconds : 0.0,
               s.n_already_done ? fmt::format("; {} were already stored", s.n_already_done) : "");
    fmt::print("n_pre: mean {:.2f}, max {} (sample {}); {} reproduced verbatim\n", s.mean_n_pre, s.max_n_pre,
               s.max_n_pre_id, s.n_exact);
    if (s.n_truncated || s.n_skipped_long || s.n_skipped_short || s.n_skipped_empty || s.data_report.n_skipped())
        fmt::print("left out or cut: {} references truncated to the context, {} too long skipped, {} too short "
                   "skipped, {} bad records skipped{}\n",
                   s.n_truncated, s.n_skipped_long, s.n_skipped_short, s.data_report.n_skipped(),
                   s.n_skipped_empty ? fmt::format(", {} empty skipped", s.n_skipped_empty) : "");
    if (generate) {
        fmt::print("greedy generation agrees with teacher forcing on {}/{} samples\n",
                   s.n_generated - static_cast<int64_t>(s.disagreements.size()), s.n_generated);
        for (size_t i = 0; i < s.disagreements.size() && i < 20; ++i)
            fmt::print("  disagreement: sample {} teacher-forced n_pre {} vs generated {}\n",
                       s.disagreements[i].sample_id, s.disagreements[i].n_pre_teacher_forced,
                       s.disagreements[i].n_pre_generated);
    }
    if (generate)
        fmt::print("approximately memorized (output within 10% edit distance of the reference): {} of {}\n", s.n_approx,
                   s.n_generated);
    if (s.guarded)
        fmt::print("decoding guard: max n_pre {}, {} verbatim, {} approximately memorized; {} steps blocked\n",
                   s.guard_max_n_pre, s.guard_n_exact, s.guard_n_approx, s.guard_blocked_steps);
    if (const auto& r = s.similarity) {
        if (r->embed_dim > 0)
            fmt::print("similarity: S_input {:.3f}, S_full {:.3f}, delta S {:+.3f} ({} neighbours, {}{})\n", r->s_input,
                       r->s_full, r->delta_s, r->k, r->knn_method,
                       std::isnan(r->knn_recall) ? "" : fmt::format(", recall {:.3f}", r->knn_recall));
        fmt::print("duplicates: {} near-duplicate clusters ({} samples, largest {}), {} samples share a prompt, {} a "
                   "reference\n",
                   r->n_clusters, r->n_clustered_samples, r->largest_cluster, r->n_duplicate_prompts,
                   r->n_duplicate_references);
    } else if (!s.similarity_note.empty()) {
        fmt::print("similarity: {}\n", s.similarity_note);
    }
    fmt::print("results: {} (run {})\n", s.out_path, s.run_id);
}

}  // namespace

void register_probe(CLI::App& app, Action& action) {
    struct Opts {
        ProbeOptions probe;
        bool quiet = false, json = false;
    };
    auto o = std::make_shared<Opts>();
    auto* cmd = app.add_subcommand("probe", "Audit a model against its SFT dataset, every sample, into a results store");
    cmd->footer("Example: memskew probe -m model.gguf -d train.jsonl --template alpaca -o run.db --adapter out/");
    o->probe.add_to(cmd);
    cmd->add_flag("--quiet,-q", o->quiet, "No progress output");
    cmd->add_flag("--json", o->json, "Print the summary as JSON on stdout");
    cmd->callback([&action, o] {
        o->probe.validate();
        action = [o] {
            const ProbeOptions& po = o->probe;
            ProbeParams p = po.params();  // checks --device before anything is written
            if (po.dist.launching()) {
                // This process only starts the ranks; they do the work.
                po.dist.launch(po.model.threads);
                return;
            }
            const DistEnv env = po.dist.env();
            if (env.distributed()) {
                p.load.n_threads = rank_threads(env, po.model.threads);
                p.load.device = parse_device(rank_device(env, po.model.device));
            }
            ProgressPrinter printer(o->quiet || o->json);
            const auto group = ProcessGroup::connect(env);
            const std::vector<ProbeSummary> runs =
                run_probes(p, [&](const ProbeProgress& pr) { printer(pr); }, group.get());
            if (group->rank() != 0) return;  // rank 0 reports for the job
            if (po.adapters.empty()) {
                if (o->json) print_json(probe_summary_json(runs.front(), po.generate, false));
                else print_summary(runs.front(), po.generate);
                return;
            }
            if (o->json) {
                nlohmann::json arr = nlohmann::json::array();
                for (const auto& s : runs) arr.push_back(probe_summary_json(s, po.generate, true));
                print_json({{"store", p.out_path}, {"runs", arr}});
                return;
            }
            for (const auto& s : runs) {
                const ProbeTarget& t = s.target;
                std::string what = t.adapter_path.empty() ? t.model_path : t.adapter_path;
                if (t.checkpoint_step) what += fmt::format(", step {}", *t.checkpoint_step);
                if (t.checkpoint_epoch) what += fmt::format(", epoch {:g}", *t.checkpoint_epoch);
                if (const std::string loss = train_loss_text(t.train_loss, t.train_loss_last_step); !loss.empty())
                    what += ", training loss: " + loss;
                fmt::print("== {}\n", what);
                print_summary(s, po.generate);
            }
        };
    });
}

}  // namespace memskew::cli
