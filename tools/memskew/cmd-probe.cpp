#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>

#include "cli.h"
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

nlohmann::json summary_json(const ProbeSummary& s, bool generate) {
    nlohmann::json dis = nlohmann::json::array();
    for (const auto& x : s.disagreements)
        dis.push_back({{"sample_id", x.sample_id}, {"n_pre", x.n_pre_teacher_forced}, {"n_pre_generated", x.n_pre_generated}});
    nlohmann::json j = {{"store", s.out_path},
                        {"run_id", s.run_id},
                        {"resumed", s.resumed},
                        {"samples", s.n_samples},
                        {"probed", s.n_probed},
                        {"already_done", s.n_already_done},
                        {"truncated", s.n_truncated},
                        {"skipped_too_long", s.n_skipped_long},
                        {"skipped_too_short", s.n_skipped_short},
                        {"skipped_empty", s.n_skipped_empty},
                        {"skipped_bad_records", s.data_report.n_skipped()},
                        {"mean_n_pre", s.mean_n_pre},
                        {"max_n_pre", s.max_n_pre},
                        {"max_n_pre_sample", s.max_n_pre_id},
                        {"exact", s.n_exact},
                        {"tokens", s.tokens},
                        {"seconds", s.seconds},
                        {"padding_waste", s.padding_waste}};
    j["similarity"] = s.similarity ? to_json(*s.similarity) : nlohmann::json({{"skipped", s.similarity_note}});
    if (generate) {
        j["generated"] = s.n_generated;
        j["n_pre_agreement"] = s.n_generated - static_cast<int64_t>(s.disagreements.size());
        j["disagreements"] = dis;
        j["approximately_memorized"] = s.n_approx;
    }
    if (s.guarded)
        j["guard"] = {{"max_n_pre", s.guard_max_n_pre}, {"exact", s.guard_n_exact},
                      {"blocked_steps", s.guard_blocked_steps}, {"approximately_memorized", s.guard_n_approx}};
    return j;
}

nlohmann::json target_json(const ProbeTarget& t) {
    nlohmann::json j = {{"model", t.model_path}, {"label", t.label}};
    j["adapter"] = t.adapter_path.empty() ? nlohmann::json() : nlohmann::json(t.adapter_path);
    j["checkpoint_step"] = t.checkpoint_step ? nlohmann::json(*t.checkpoint_step) : nlohmann::json();
    j["checkpoint_epoch"] = t.checkpoint_epoch ? nlohmann::json(*t.checkpoint_epoch) : nlohmann::json();
    j["train_loss"] = t.train_loss ? nlohmann::json(*t.train_loss) : nlohmann::json();
    return j;
}

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
        ModelOptions model;
        DatasetOptions data;
        DistCliOptions dist;
        std::string out;
        uint64_t seed = 0;
        int64_t batch_tokens = 8192, batch_size = 64;
        double temperature = 1.0, top_p = 1.0, min_k = 0.2, n_tries = 100;
        int64_t top_k = 0, k_extractable = 50;
        bool generate = false, resume = false, quiet = false, json = false, no_text = false;
        bool no_embeddings = false, keep_embeddings = false;
        std::string embed_model, guard;
        int neighbours = 10;
        int64_t guard_n = 10;
        std::vector<std::string> adapters;
    };
    auto o = std::make_shared<Opts>();
    auto* cmd = app.add_subcommand("probe", "Audit a model against its SFT dataset, every sample, into a results store");
    cmd->footer("Example: memskew probe -m model.gguf -d train.jsonl --template alpaca -o run.db --adapter out/");
    o->model.add_to(cmd);
    o->data.add_to(cmd);
    o->dist.add_to(cmd);
    cmd->add_option("--out,-o", o->out, "Results store (SQLite) to write")->required();
    cmd->add_option("--adapter,-a", o->adapters,
                    "PEFT adapter folder to apply to --model (repeatable), a checkpoint-<step> folder, or a Trainer "
                    "output folder: one run per checkpoint-<step> (adapter or full model), all in --out");
    cmd->add_flag("--resume", o->resume, "Continue an interrupted run in --out (same model, data and options)");
    cmd->add_option("--seed", o->seed, "Seed of --sample");
    cmd->add_flag("--generate", o->generate, "Also generate greedily: ROUGE, Levenshtein, and an n_pre cross-check");
    cmd->add_option("--temperature", o->temperature, "M4 sampling temperature")->check(CLI::PositiveNumber);
    cmd->add_option("--top-k", o->top_k, "M4 top-k (0: off)")->check(CLI::NonNegativeNumber);
    cmd->add_option("--top-p", o->top_p, "M4 top-p (1: off)")->check(CLI::Range(0.0, 1.0));
    cmd->add_option("--tries", o->n_tries, "n of the (n,p)-discoverable extraction probability")
        ->check(CLI::PositiveNumber);
    cmd->add_option("--k-extractable", o->k_extractable, "k of k-extractable")->check(CLI::PositiveNumber);
    cmd->add_option("--min-k", o->min_k, "Fraction for min-k% and min-k%++")->check(CLI::Range(0.0, 1.0));
    cmd->add_option("--batch-tokens", o->batch_tokens, "Padded tokens per batch")->check(CLI::PositiveNumber);
    cmd->add_option("--batch-size", o->batch_size, "Most samples per batch")->check(CLI::PositiveNumber);
    cmd->add_flag("--no-text", o->no_text, "Do not keep sample texts in the store");
    cmd->add_option("--embed-model", o->embed_model,
                    "Take the sample embeddings (similarity figures) from this model, in a pass of its own, instead "
                    "of the model under test (e.g. the base model when probing checkpoints)");
    cmd->add_flag("--keep-embeddings", o->keep_embeddings,
                  "Keep the sample embeddings in the store (float16; `memskew export --embeddings` writes them)");
    cmd->add_flag("--no-embeddings", o->no_embeddings,
                  "No sample embeddings: no S_input/S_full/neighbour figures (duplicates are still found)");
    cmd->add_option("--neighbours", o->neighbours, "Nearest neighbours per sample for the similarity figures")
        ->check(CLI::PositiveNumber);
    cmd->add_option("--guard", o->guard,
                    "With --generate: also generate with the decoding guard, which never completes an n-gram of "
                    "this dataset's references (read with the same dataset options, encoded as `memskew train` "
                    "encodes them); the guarded outputs' metrics are stored beside the unguarded ones");
    cmd->add_option("--guard-n", o->guard_n, "n-gram length of the guard (default 10)");
    cmd->add_flag("--quiet,-q", o->quiet, "No progress output");
    cmd->add_flag("--json", o->json, "Print the summary as JSON on stdout");
    cmd->callback([&action, o, cmd] {
        o->data.validate();
        action = [o, cmd] {
            ProbeParams p;
            p.model_path = o->model.model;
            p.load = o->model.load_params();  // checks --device before anything is written
            if (o->dist.launching()) {
                // This process only starts the ranks; they do the work.
                o->dist.launch(o->model.threads);
                return;
            }
            const DistEnv env = o->dist.env();
            if (env.distributed()) {
                p.load.n_threads = rank_threads(env, o->model.threads);
                p.load.device = parse_device(rank_device(env, o->model.device));
            }
            p.data_path = o->data.data;
            p.out_path = o->out;
            p.resume = o->resume;
            p.adapters = o->adapters;
            p.data = o->data.dataset_params(o->seed);
            p.text_split = o->data.text_split();
            p.max_reference_tokens = o->data.max_reference;
            p.truncate = o->data.truncate_policy();
            p.sampling = {o->temperature, o->top_k, o->top_p};
            p.metrics.min_k = o->min_k;
            p.metrics.k_extractable = o->k_extractable;
            p.metrics.n_tries = o->n_tries;
            p.generate = o->generate;
            p.store_text = !o->no_text;
            p.token_budget = o->batch_tokens;
            p.max_batch_size = o->batch_size;
            p.embeddings = !o->no_embeddings;
            p.embed_model = o->embed_model;
            p.keep_embeddings = o->keep_embeddings;
            p.similarity.knn.k = o->neighbours;
            p.guard_data = o->guard;
            p.guard_dataset = p.data;
            // The whole guard dataset, not the probe's selection of it.
            p.guard_dataset.limit = 0;
            p.guard_dataset.subset = 0;
            p.guard_dataset.n_shards = 1;
            p.guard_dataset.shard_index = 0;
            p.guard_n = o->guard_n;
            if (o->no_embeddings && (o->keep_embeddings || !o->embed_model.empty()))
                throw InvalidInput("--no-embeddings contradicts --keep-embeddings / --embed-model",
                                   "drop one of them");
            ProgressPrinter printer(o->quiet || o->json);
            const auto group = ProcessGroup::connect(env);
            const std::vector<ProbeSummary> runs =
                run_probes(p, [&](const ProbeProgress& pr) { printer(pr); }, group.get());
            if (group->rank() != 0) return;  // rank 0 reports for the job
            if (o->adapters.empty()) {
                if (o->json) print_json(summary_json(runs.front(), o->generate));
                else print_summary(runs.front(), o->generate);
                return;
            }
            if (o->json) {
                nlohmann::json arr = nlohmann::json::array();
                for (const auto& s : runs) {
                    nlohmann::json j = summary_json(s, o->generate);
                    j["target"] = target_json(s.target);
                    arr.push_back(std::move(j));
                }
                print_json({{"store", p.out_path}, {"runs", arr}});
                return;
            }
            for (const auto& s : runs) {
                const ProbeTarget& t = s.target;
                std::string what = t.adapter_path.empty() ? t.model_path : t.adapter_path;
                if (t.checkpoint_step) what += fmt::format(", step {}", *t.checkpoint_step);
                if (t.checkpoint_epoch) what += fmt::format(", epoch {:g}", *t.checkpoint_epoch);
                if (t.train_loss) what += fmt::format(", training loss {:.4g}", *t.train_loss);
                fmt::print("== {}\n", what);
                print_summary(s, o->generate);
            }
        };
    });
}

}  // namespace memskew::cli
