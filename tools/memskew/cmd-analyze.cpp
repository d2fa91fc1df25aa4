// `memskew analyze`: the skew, sampling-bias, hazard, correlation, predictor
// and checkpoint analysis of a results store (METHOD M5–M9, M11).
#include <fmt/format.h>

#include <cstdio>
#include <fstream>
#include <iostream>

#include "cli.h"
#include "memskew/analysis.h"
#include "memskew/pipeline.h"
#include "memskew/error.h"

namespace memskew::cli {

void register_analyze(CLI::App& app, Action& action) {
    struct Opts {
        std::string store, json;
        int64_t run = 0;
        std::size_t top = 10, bootstrap = 1000, permutations = 1000;
        uint64_t seed = 0;
        bool no_predictors = false;
    };
    auto o = std::make_shared<Opts>();
    auto* cmd = app.add_subcommand("analyze", "Analyse a results store: skew, sampling bias, per-token recall, "
                                              "correlations, optimal predictors, checkpoint trends");
    cmd->footer("Example: memskew analyze run.db --run 3 --json analysis.json");
    cmd->add_option("store", o->store, "Results store (SQLite, from `memskew probe --out`)")->required();
    cmd->add_option("--run", o->run, "Run id to analyse (default: the only run, or the last checkpoint)");
    cmd->add_option("--json", o->json, "Write the JSON document (docs/analysis-json.md) to this file; - for stdout");
    cmd->add_option("--top", o->top, "Number of top samples to list")->check(CLI::Range(1, 100000));
    cmd->add_option("--bootstrap", o->bootstrap, "Bootstrap resamples (0: none)")->check(CLI::Range(0, 10000000));
    cmd->add_option("--permutations", o->permutations, "Permutations per position for the independence check (0: none)")
        ->check(CLI::Range(0, 10000000));
    cmd->add_option("--seed", o->seed, "Seed of the bootstrap and permutation tests");
    cmd->add_flag("--no-predictors", o->no_predictors, "Skip the M9 trie over the references");
    cmd->callback([&action, o, cmd] {
        const bool has_run = cmd->count("--run") > 0;
        action = [o, has_run] {
            AnalyzeParams p;
            if (has_run) p.run_id = o->run;
            p.top_k = o->top;
            p.n_bootstrap = o->bootstrap;
            p.n_permutations = o->permutations;
            p.seed = o->seed;
            p.predictors = !o->no_predictors;
            const AnalysisResult r = analyze_store(o->store, p);
            if (o->json == "-") {
                print_json(to_json(r));
                return;
            }
            std::fputs(format_summary(r).c_str(), stdout);
            if (o->json.empty()) return;
            // Written beside the target and renamed: a failure leaves no partial file.
            const std::string tmp = o->json + ".tmp";
            {
                std::ofstream f(tmp, std::ios::binary);
                if (!f) throw IoError(fmt::format("cannot write '{}'", o->json));
                f << to_json(r).dump(2) << "\n";
                f.close();
                if (!f) throw IoError(fmt::format("error writing '{}'", o->json));
            }
            if (std::rename(tmp.c_str(), o->json.c_str()) != 0)
                throw IoError(fmt::format("cannot write '{}'", o->json));
            fmt::print(stderr, "wrote {}\n", o->json);
        };
    });
}

}  // namespace memskew::cli
