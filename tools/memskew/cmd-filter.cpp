// `memskew filter`: a filtered copy of a dataset and the manifest of what was
// removed (the data side of METHOD M12).
#include <fmt/format.h>

#include "cli.h"
#include "memskew/filter.h"

namespace memskew::cli {

void register_filter(CLI::App& app, Action& action) {
    struct Opts {
        DatasetOptions data;
        std::string store, out, manifest;
        int64_t run = 0, max_per_cluster = 0, n_pre_at_least = 0;
        bool drop_ambiguous = false, json = false;
    };
    auto o = std::make_shared<Opts>();
    auto* cmd = app.add_subcommand(
        "filter", "Write a copy of a dataset (same format, same fields) without near-duplicates, memorized samples "
                  "or ambiguous prompt-mates, with a manifest of what was removed");
    cmd->footer("Example: memskew filter -d train.jsonl --store run.db --max-per-cluster 1 --n-pre-at-least 32 "
                "-o train.filtered.jsonl\nthen: memskew train ... -d train.filtered.jsonl, and probe again.");
    o->data.add_to(cmd);
    cmd->add_option("--store,-s", o->store, "Results store of a probe of this dataset (clusters and n_pre)");
    cmd->add_option("--run", o->run, "Run id in --store (default: the last checkpoint)");
    cmd->add_option("--out,-o", o->out, "Filtered dataset to write (never the input)")->required();
    cmd->add_option("--manifest", o->manifest, "Manifest of removed samples, JSONL (default: OUT.manifest.jsonl)");
    cmd->add_option("--max-per-cluster", o->max_per_cluster,
                    "Keep at most N samples of each near-duplicate cluster (the first in file order)")
        ->check(CLI::PositiveNumber);
    cmd->add_option("--n-pre-at-least", o->n_pre_at_least, "Remove samples with n_pre >= T in the run")
        ->check(CLI::PositiveNumber);
    cmd->add_flag("--drop-ambiguous", o->drop_ambiguous,
                  "Remove samples whose prompt-mates continue differently (the most frequent reference stays)");
    cmd->add_flag("--json", o->json, "Print the summary as JSON");
    cmd->callback([&action, o, cmd] {
        o->data.validate();
        FilterParams p;
        p.data_path = o->data.data;
        p.data = o->data.dataset_params(0);
        p.store_path = o->store;
        if (cmd->count("--run")) p.run_id = o->run;
        p.out_path = o->out;
        p.manifest_path = o->manifest;
        if (cmd->count("--max-per-cluster")) p.max_per_cluster = o->max_per_cluster;
        if (cmd->count("--n-pre-at-least")) p.n_pre_at_least = o->n_pre_at_least;
        p.drop_ambiguous = o->drop_ambiguous;
        action = [o, p] {
            const FilterReport r = run_filter(p);
            if (o->json) {
                print_json({{"out", r.out_path},
                            {"manifest", r.manifest_path},
                            {"run_id", r.run_id},
                            {"records", r.n_records},
                            {"samples", r.n_samples},
                            {"written", r.n_written},
                            {"removed", r.n_removed},
                            {"removed_by_reason", r.removed_by_reason}});
                return;
            }
            std::string why;
            for (const auto& [k, n] : r.removed_by_reason) why += fmt::format("{}{} {}", why.empty() ? "" : ", ", n, k);
            fmt::print("filter: kept {} of {} records, removed {}{}\n", r.n_written, r.n_records, r.n_removed,
                       why.empty() ? "" : " (" + why + ")");
            fmt::print("wrote {} and {}\n", r.out_path, r.manifest_path);
        };
    });
}

}  // namespace memskew::cli
