// `memskew report`: the self-contained HTML report of a results store.
#include <fmt/format.h>

#include <cstdio>

#include "cli.h"
#include "memskew/analysis.h"
#include "memskew/pipeline.h"
#include "memskew/report.h"

namespace memskew::cli {

void register_report(CLI::App& app, Action& action) {
    struct Opts {
        std::string store, out;
        int64_t run = 0;
        bool redact = false;
        std::size_t top = 10, max_points = 5000, bootstrap = 1000, permutations = 1000;
        uint64_t seed = 0;
    };
    auto o = std::make_shared<Opts>();
    auto* cmd = app.add_subcommand("report", "Write a self-contained HTML report (inline SVG charts) of a results store");
    cmd->footer("Example: memskew report run.db -o report.html --redact");
    cmd->add_option("store", o->store, "Results store (SQLite, from `memskew probe --out`)")->required();
    cmd->add_option("--out,-o", o->out, "Output HTML file")->required();
    cmd->add_option("--run", o->run, "Run id to report (default: the only run, or the last checkpoint)");
    cmd->add_flag("--redact", o->redact, "Replace all sample texts by ids and short hashes");
    cmd->add_option("--top", o->top, "Rows of the top-samples table")->check(CLI::Range(1, 1000));
    cmd->add_option("--max-points", o->max_points, "Scatter points before subsampling")->check(CLI::Range(100, 1000000));
    cmd->add_option("--bootstrap", o->bootstrap, "Bootstrap resamples (0: none)")->check(CLI::Range(0, 10000000));
    cmd->add_option("--permutations", o->permutations, "Permutations per position for the independence check (0: none)")
        ->check(CLI::Range(0, 10000000));
    cmd->add_option("--seed", o->seed, "Seed of the bootstrap and permutation tests");
    cmd->callback([&action, o, cmd] {
        const bool has_run = cmd->count("--run") > 0;
        action = [o, has_run] {
            AnalyzeParams ap;
            if (has_run) ap.run_id = o->run;
            ap.top_k = o->top;
            ap.n_bootstrap = o->bootstrap;
            ap.n_permutations = o->permutations;
            ap.seed = o->seed;
            ReportParams rp;
            rp.redact = o->redact;
            rp.top_k = o->top;
            rp.max_scatter_points = o->max_points;
            write_report_file(o->store, o->out, ap, rp);
            fmt::print(stderr, "wrote {}\n", o->out);
        };
    });
}

}  // namespace memskew::cli
