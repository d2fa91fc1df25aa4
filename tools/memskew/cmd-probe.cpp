#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>

#include "cli.h"
#include "memskew/error.h"
#include "memskew/probe.h"

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
                        {"skipped_bad_records", s.data_report.n_skipped()},
                        {"mean_n_pre", s.mean_n_pre},
                        {"max_n_pre", s.max_n_pre},
                        {"max_n_pre_sample", s.max_n_pre_id},
                        {"exact", s.n_exact},
                        {"tokens", s.tokens},
                        {"seconds", s.seconds},
                        {"padding_waste", s.padding_waste}};
    if (generate) {
        j["generated"] = s.n_generated;
        j["n_pre_agreement"] = s.n_generated - static_cast<int64_t>(s.disagreements.size());
        j["disagreements"] = dis;
    }
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
    if (s.n_truncated || s.n_skipped_long || s.n_skipped_short || s.data_report.n_skipped())
        fmt::print("left out or cut: {} references truncated to the context, {} too long skipped, {} too short "
                   "skipped, {} bad records skipped\n",
                   s.n_truncated, s.n_skipped_long, s.n_skipped_short, s.data_report.n_skipped());
    if (generate) {
        fmt::print("greedy generation agrees with teacher forcing on {}/{} samples\n",
                   s.n_generated - static_cast<int64_t>(s.disagreements.size()), s.n_generated);
        for (size_t i = 0; i < s.disagreements.size() && i < 20; ++i)
            fmt::print("  disagreement: sample {} teacher-forced n_pre {} vs generated {}\n",
                       s.disagreements[i].sample_id, s.disagreements[i].n_pre_teacher_forced,
                       s.disagreements[i].n_pre_generated);
    }
    fmt::print("results: {} (run {})\n", s.out_path, s.run_id);
}

}  // namespace

void register_probe(CLI::App& app, Action& action) {
    struct Opts {
        ModelOptions model;
        std::string data, out, format = "auto", tmpl = "plain", shard, truncate = "reference";
        std::string prompt_field, input_field, response_field, id_field = "id", messages_field;
        size_t limit = 0, sample = 0;
        uint64_t seed = 0;
        int64_t prefix_tokens = 0, suffix_tokens = 0, max_reference = 0, batch_tokens = 8192, batch_size = 64;
        double temperature = 1.0, top_p = 1.0, min_k = 0.2, n_tries = 100;
        int64_t top_k = 0, k_extractable = 50;
        bool generate = false, resume = false, quiet = false, json = false, skip_bad = false, skip_empty = false;
        bool dedupe_ids = false, no_text = false, end_marker = false;
        std::vector<std::string> adapters;
    };
    auto o = std::make_shared<Opts>();
    auto* cmd = app.add_subcommand("probe", "Audit a model against its SFT dataset, every sample, into a results store");
    o->model.add_to(cmd);
    cmd->add_option("--data,-d", o->data, "Dataset (JSONL, JSON array or CSV)")->required();
    cmd->add_option("--out,-o", o->out, "Results store (SQLite) to write")->required();
    cmd->add_option("--adapter,-a", o->adapters,
                    "PEFT adapter folder to apply to --model (repeatable), a checkpoint-<step> folder, or a Trainer "
                    "output folder: one run per checkpoint-<step> (adapter or full model), all in --out");
    cmd->add_flag("--resume", o->resume, "Continue an interrupted run in --out (same model, data and options)");
    cmd->add_option("--format", o->format, "Record format: auto, alpaca, gpteacher, prompt-completion, qa, chat, text");
    cmd->add_option("--template", o->tmpl, "Prompt template: plain, alpaca, alpaca-original, chatml, llama-2, llama-3, "
                                           "or a string with {instruction} {input} {prompt} {system}");
    cmd->add_flag("--reference-end-marker", o->end_marker, "Append the template's end-of-turn marker to references");
    cmd->add_option("--prompt-field", o->prompt_field, "Field holding the instruction/prompt/question/text");
    cmd->add_option("--input-field", o->input_field, "Field holding the input (alpaca style)");
    cmd->add_option("--response-field", o->response_field, "Field holding the reference response");
    cmd->add_option("--messages-field", o->messages_field, "Field holding chat messages");
    cmd->add_option("--id-field", o->id_field, "Field holding the sample id (else a content hash)");
    cmd->add_option("--prefix-tokens", o->prefix_tokens, "Raw text mode: prompt = first P tokens")
        ->check(CLI::PositiveNumber);
    cmd->add_option("--suffix-tokens", o->suffix_tokens, "Raw text mode: reference = next L tokens")
        ->check(CLI::PositiveNumber);
    cmd->add_option("--max-reference-tokens", o->max_reference, "Score at most this many reference tokens (0: all)")
        ->check(CLI::NonNegativeNumber);
    cmd->add_option("--truncate", o->truncate, "Samples longer than the context: reference (cut its tail) or skip")
        ->check(CLI::IsMember({"reference", "skip"}));
    cmd->add_option("--limit", o->limit, "Probe the first N samples");
    cmd->add_option("--sample", o->sample, "Probe a random subset of N samples (see --seed)");
    cmd->add_option("--seed", o->seed, "Seed of --sample");
    cmd->add_option("--shard", o->shard, "i/n: probe the i-th of n deterministic parts (merge with `memskew merge`)");
    cmd->add_flag("--skip-bad", o->skip_bad, "Skip (and count) malformed records instead of failing");
    cmd->add_flag("--skip-empty", o->skip_empty, "Skip (and count) samples with an empty reference");
    cmd->add_flag("--dedupe-ids", o->dedupe_ids, "Give duplicate ids a #2, #3... suffix instead of failing");
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
    cmd->add_flag("--quiet,-q", o->quiet, "No progress output");
    cmd->add_flag("--json", o->json, "Print the summary as JSON on stdout");
    cmd->callback([&action, o, cmd] {
        if ((o->prefix_tokens > 0) != (o->suffix_tokens > 0))
            throw CLI::ValidationError("--prefix-tokens and --suffix-tokens go together");
        action = [o, cmd] {
            ProbeParams p;
            p.model_path = o->model.model;
            p.load.dtype = parse_dtype(o->model.dtype);
            p.load.n_threads = o->model.threads;
            p.data_path = o->data;
            p.out_path = o->out;
            p.resume = o->resume;
            p.adapters = o->adapters;
            DatasetParams& d = p.data;
            if (o->prefix_tokens > 0) {
                d.format = RecordFormat::kText;
                p.text_split = TextSplitParams{static_cast<size_t>(o->prefix_tokens),
                                               static_cast<size_t>(o->suffix_tokens), ShortTextPolicy::kSkip, 1};
            } else if (o->format != "auto") {
                d.format = parse_record_format(o->format);
            }
            d.prompt_template = parse_template(o->tmpl);
            d.prompt_template.reference_end_marker = o->end_marker;
            d.prompt_field = o->prompt_field;
            d.input_field = o->input_field;
            d.response_field = o->response_field;
            d.messages_field = o->messages_field;
            d.id_field = o->id_field;
            d.limit = o->limit;
            d.subset = o->sample;
            d.seed = o->seed;
            d.skip_bad = o->skip_bad;
            d.skip_empty_reference = o->skip_empty;
            d.dedupe_ids = o->dedupe_ids;
            if (!o->shard.empty()) {
                size_t i = 0, n = 0;
                char slash = 0;
                if (std::sscanf(o->shard.c_str(), "%zu%c%zu", &i, &slash, &n) != 3 || slash != '/' || n == 0 || i >= n)
                    throw InvalidInput(fmt::format("--shard '{}' is not of the form i/n with 0 <= i < n", o->shard));
                d.shard_index = i;
                d.n_shards = n;
            }
            p.max_reference_tokens = o->max_reference;
            p.truncate = parse_truncate_policy(o->truncate);
            p.sampling = {o->temperature, o->top_k, o->top_p};
            p.metrics.min_k = o->min_k;
            p.metrics.k_extractable = o->k_extractable;
            p.metrics.n_tries = o->n_tries;
            p.generate = o->generate;
            p.store_text = !o->no_text;
            p.token_budget = o->batch_tokens;
            p.max_batch_size = o->batch_size;
            ProgressPrinter printer(o->quiet || o->json);
            const std::vector<ProbeSummary> runs = run_probes(p, [&](const ProbeProgress& pr) { printer(pr); });
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
