// `memskew study CONFIG.toml`: train every arm of a declared experiment, probe
// every checkpoint on the arm's own samples into one store, write one report.
#include <fmt/format.h>

#include <cstdio>

#include "cli.h"
#include "memskew/file-io.h"
#include "memskew/study.h"

namespace memskew::cli {

void register_study(CLI::App& app, Action& action) {
    struct Opts {
        std::string config, out, device;
        bool no_train = false, no_probe = false, quiet = false, json = false;
    };
    auto o = std::make_shared<Opts>();
    auto* cmd = app.add_subcommand(
        "study", "Run a declared training study (M11): train every arm, probe every checkpoint, one report");
    cmd->footer("Example: memskew study examples/study-medquad.toml -o study-medquad");
    cmd->add_option("config", o->config, "Study config (TOML; see docs/study.md)")->required();
    cmd->add_option("--out,-o", o->out, "Output folder (default: [study] out); re-running resumes in it");
    cmd->add_option("--device", o->device,
                    "cpu, cuda or cuda:N, for training and probing: overrides [model] device (needs a CUDA LibTorch)");
    cmd->add_flag("--no-train", o->no_train, "Do not train: probe and report the arms already trained");
    cmd->add_flag("--no-probe", o->no_probe, "Only train (the report covers what the store holds)");
    cmd->add_flag("--quiet,-q", o->quiet, "No progress lines");
    cmd->add_flag("--json", o->json, "Print study.json on stdout");
    cmd->callback([&action, o] {
        action = [o] {
            StudyConfig config = load_study_config(o->config);  // checks [model] device
            if (!o->device.empty()) config.load.device = parse_device(o->device);  // before anything is written
            config.probe.load = config.load;
            StudyParams p;
            p.out_dir = o->out;
            p.train = !o->no_train;
            p.probe = !o->no_probe;
            const StudySummary s = run_study(config, p, [&](const std::string& line) {
                if (o->quiet) return;
                fmt::print(stderr, "study: {}\n", line);
                std::fflush(stderr);
            });
            if (o->json) {
                print_json(nlohmann::json::parse(memskew::read_text_file(s.json_path)));
                return;
            }
            for (const auto& a : s.arms) {
                std::string src;
                for (const auto& x : a.sources) src += fmt::format("{}{} {}", src.empty() ? "" : " + ", x.dataset, x.n);
                fmt::print("arm {} ({}; {} samples): {} checkpoints{}\n", a.name, src, a.n_train_samples, a.points.size(),
                           a.trained_now ? ", trained now" : "");
                for (const auto& p : a.points)
                    fmt::print("  epoch {:>3}  step {:>6}  mean training loss of the epoch {:.4f} (last step {:.4f})  "
                               "n_pre mean {:.2f}  p99 {:.1f}  max {:.0f}  exact {}\n",
                               p.epoch, p.step, p.train_loss, p.train_loss_last_step, p.mean_n_pre, p.p99_n_pre,
                               p.max_n_pre, p.n_exact);
            }
            // The composition test at the last epoch each pair reached.
            for (size_t i = 0; i < s.comparisons.size(); ++i) {
                const auto& r = s.comparisons[i];
                const bool last = i + 1 == s.comparisons.size() || s.comparisons[i + 1].a != r.a || s.comparisons[i + 1].b != r.b;
                if (!last) continue;
                if (r.wilcoxon)
                    fmt::print("composition {} vs {} at epoch {}: {} shared samples, mean n_pre {:.3f} vs {:.3f}; "
                               "Wilcoxon W = {}, p = {:.3g}, z = {:.3f}, r = {:.3f}, rank-biserial = {:.3f}\n",
                               r.a, r.b, r.epoch, r.n_shared, r.mean_a, r.mean_b, r.wilcoxon->statistic,
                               r.wilcoxon->p_value, r.wilcoxon->z, r.wilcoxon->effect_size_r, r.wilcoxon->rank_biserial);
                else
                    fmt::print("composition {} vs {} at epoch {}: {} shared samples; no test: {}\n", r.a, r.b, r.epoch,
                               r.n_shared, r.skipped);
            }
            fmt::print("report: {}\nstore: {}\n", s.report_path, s.store_path);
        };
    });
}

}  // namespace memskew::cli
