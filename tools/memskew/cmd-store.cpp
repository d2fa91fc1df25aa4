// `memskew export` and `memskew merge`: the results store's command-line side.
#include <fmt/format.h>

#include <fstream>
#include <iostream>

#include "cli.h"
#include "memskew/error.h"
#include "memskew/store.h"

namespace memskew::cli {

void register_export(CLI::App& app, Action& action) {
    struct Opts {
        std::string store, format = "csv", out;
        int64_t run = 0;
    };
    auto o = std::make_shared<Opts>();
    auto* cmd = app.add_subcommand("export", "Write a results store's per-sample table as CSV or JSONL");
    cmd->add_option("store", o->store, "Results store (SQLite)")->required();
    cmd->add_option("--format,-f", o->format, "csv or jsonl")->check(CLI::IsMember({"csv", "jsonl"}));
    cmd->add_option("--run", o->run, "Only this run id (default: every run)");
    cmd->add_option("--out,-o", o->out, "Output file (default: stdout)");
    cmd->callback([&action, o, cmd] {
        const bool has_run = cmd->count("--run") > 0;
        action = [o, has_run] {
            auto reader = ResultReader::open(o->store);
            ExportParams ep;
            ep.format = parse_export_format(o->format);
            if (has_run) ep.run_id = o->run;
            if (o->out.empty()) {
                export_run(reader, ep, std::cout);
                return;
            }
            // Written beside the target and renamed, so a failure leaves no partial file.
            const std::string tmp = o->out + ".tmp";
            {
                std::ofstream f(tmp, std::ios::binary);
                if (!f) throw IoError(fmt::format("cannot write '{}'", o->out));
                const int64_t rows = export_run(reader, ep, f);
                f.close();
                if (!f) throw IoError(fmt::format("error writing '{}'", o->out));
                fmt::print(stderr, "wrote {} rows to {}\n", rows, o->out);
            }
            if (std::rename(tmp.c_str(), o->out.c_str()) != 0) throw IoError(fmt::format("cannot write '{}'", o->out));
        };
    });
}

void register_merge(CLI::App& app, Action& action) {
    struct Opts {
        std::vector<std::string> inputs;
        std::string out;
    };
    auto o = std::make_shared<Opts>();
    auto* cmd = app.add_subcommand("merge", "Merge results stores (e.g. the shards of one probe) into one");
    cmd->add_option("inputs", o->inputs, "Stores to merge")->required()->expected(1, -1);
    cmd->add_option("--out,-o", o->out, "Output store (created, or extended)")->required();
    cmd->callback([&action, o] {
        action = [o] {
            const MergeReport r = merge_stores(o->inputs, o->out);
            fmt::print("merged {} samples into {} run(s) of {}\n", r.n_samples, r.n_runs, o->out);
        };
    });
}

}  // namespace memskew::cli
