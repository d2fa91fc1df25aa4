// `memskew export` and `memskew merge`: the results store's command-line side.
#include <fmt/format.h>

#include <fstream>
#include <iostream>

#include "cli.h"
#include "memskew/error.h"
#include "memskew/pipeline.h"
#include "memskew/store-similarity.h"
#include "memskew/store.h"

namespace memskew::cli {

void register_export(CLI::App& app, Action& action) {
    struct Opts {
        std::string store, format = "csv", out, embeddings;
        int64_t run = 0;
    };
    auto o = std::make_shared<Opts>();
    auto* cmd = app.add_subcommand("export", "Write a results store's per-sample table as CSV or JSONL");
    cmd->add_option("store", o->store, "Results store (SQLite)")->required();
    cmd->add_option("--format,-f", o->format, "csv or jsonl")->check(CLI::IsMember({"csv", "jsonl"}));
    cmd->add_option("--run", o->run, "Only this run id (default: every run)");
    cmd->add_option("--out,-o", o->out, "Output file (default: stdout)");
    cmd->add_option("--embeddings", o->embeddings,
                    "Instead of the table: write the run's kept embeddings (probe --keep-embeddings) as "
                    "PREFIX.prompt.npy, PREFIX.full.npy (float16 [samples, dim]) and PREFIX.ids.txt");
    cmd->footer("Example: memskew export run.db -f csv -o run.csv  |  memskew export run.db --embeddings emb");
    cmd->callback([&action, o, cmd] {
        const bool has_run = cmd->count("--run") > 0;
        action = [o, has_run] {
            auto reader = ResultReader::open(o->store);
            if (!o->embeddings.empty()) {
                const int64_t run_id = has_run ? o->run : reader.only_run().run_id;
                const int64_t n = export_embeddings(reader, run_id, o->embeddings);
                fmt::print(stderr, "wrote {} embeddings of run {} to {}.prompt.npy, {}.full.npy and {}.ids.txt\n", n,
                           run_id, o->embeddings, o->embeddings, o->embeddings);
                return;
            }
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
    cmd->footer("Example: memskew merge shard-0.db shard-1.db -o run.db");
    cmd->add_option("inputs", o->inputs, "Stores to merge")->required()->expected(1, -1);
    cmd->add_option("--out,-o", o->out, "Output store (created, or extended)")->required();
    cmd->callback([&action, o] {
        action = [o] {
            const MergeReport r = merge_stores(o->inputs, o->out);
            fmt::print("merged {} samples into {} run(s) of {}\n", r.n_samples, r.n_runs, o->out);
            // Shards carry their vectors; the figures need the whole run.
            for (int64_t id : r.run_ids) {
                const auto reader = ResultReader::open(o->out, false);
                if (count_vectors(reader, id) == 0 || load_run_similarity(reader, id)) continue;
                if (const auto s = compute_store_similarity(o->out, id))
                    fmt::print("run {}: similarity figures over {} samples (S_input {:.3f}, S_full {:.3f}, {} "
                               "near-duplicate clusters)\n",
                               id, s->n_samples, s->s_input, s->s_full, s->n_clusters);
            }
        };
    });
}

}  // namespace memskew::cli
