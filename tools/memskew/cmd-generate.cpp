#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <optional>

#include "cli.h"
#include "memskew/data.h"
#include "memskew/engine.h"
#include "memskew/error.h"
#include "memskew/model.h"
#include "memskew/ngram-guard.h"
#include "memskew/sft-encoder.h"
#include "memskew/tokenizer.h"
#include "memskew/train.h"

namespace memskew::cli {

// Text that `generated` adds after `prompt` (decoding the whole sequence keeps
// SentencePiece's word-initial spaces right).
std::string continuation_text(const Tokenizer& tok, const std::vector<int32_t>& prompt,
                              const std::vector<int32_t>& generated) {
    std::vector<int32_t> all(prompt);
    all.insert(all.end(), generated.begin(), generated.end());
    const std::string full = tok.decode(all);
    const std::string head = tok.decode(prompt);
    if (full.compare(0, head.size(), head) == 0) return full.substr(head.size());
    return tok.decode(generated);
}

namespace {

// The guard's dataset options. DatasetOptions (cli.h) cannot be reused: its
// --data is required and its names would clash with a command that has its
// own data. So every dataset option, and the sample encoder's options, is
// repeated here with a --guard- prefix, meaning what it means for `train`:
// give the guard the options the model was trained with.
struct GuardOptions {
    std::string data, truncate = "reference";
    int n = 10;
    size_t limit = 0;
    int64_t prefix_tokens = 0, suffix_tokens = 0, max_reference = 0;
    bool no_eos = false, with_prompt = false;
    std::map<std::string, std::string> values;
    std::map<std::string, bool> flags;
    std::map<std::string, CLI::Option*> given;

    void add_to(CLI::App* cmd) {
        cmd->add_option("--guard", data,
                        "Training dataset: never emit a token that completes one of its n-grams (MemFree decoding)");
        cmd->add_option("--guard-n", n, "n of the guard's n-grams (at least 2)");
        for (const DatasetOption& o : dataset_options()) {
            std::string name = std::string("--guard-") + o.key;
            std::replace(name.begin(), name.end(), '_', '-');
            const std::string help = std::string("Guard dataset: ") + o.help;
            given[o.key] = o.is_flag ? cmd->add_flag(name, flags[o.key], help) : cmd->add_option(name, values[o.key], help);
        }
        cmd->add_option("--guard-limit", limit, "Guard dataset: use the first N samples");
        cmd->add_option("--guard-max-reference-tokens", max_reference,
                        "Guard dataset: at most this many reference tokens (as train's --max-reference-tokens)")
            ->check(CLI::NonNegativeNumber);
        cmd->add_option("--guard-truncate", truncate, "Guard dataset: samples longer than the context: reference or skip")
            ->check(CLI::IsMember({"reference", "skip"}));
        cmd->add_option("--guard-prefix-tokens", prefix_tokens, "Guard dataset, raw text mode: prompt = first P tokens")
            ->check(CLI::PositiveNumber);
        cmd->add_option("--guard-suffix-tokens", suffix_tokens, "Guard dataset, raw text mode: reference = next L tokens")
            ->check(CLI::PositiveNumber);
        cmd->add_flag("--guard-no-eos", no_eos, "The model was trained with --no-eos (no EOS after the references)");
        cmd->add_flag("--guard-with-prompt", with_prompt, "Also block the prompts' n-grams (prompt ‖ reference)");
    }

    void validate() const {
        if ((prefix_tokens > 0) != (suffix_tokens > 0))
            throw CLI::ValidationError("--guard-prefix-tokens and --guard-suffix-tokens go together");
    }

    // The training parameters the guard's dataset options stand for.
    TrainParams train_params() const {
        TrainParams p;
        p.data_path = data;
        for (const DatasetOption& o : dataset_options()) {
            if (given.at(o.key)->count() == 0) continue;
            o.apply(p.data, o.is_flag ? (flags.at(o.key) ? "true" : "false") : values.at(o.key));
        }
        if (prefix_tokens > 0) {
            p.data.format = RecordFormat::kText;
            p.text_split = TextSplitParams{static_cast<size_t>(prefix_tokens), static_cast<size_t>(suffix_tokens),
                                           ShortTextPolicy::kSkip, 1};
        }
        p.data.limit = limit;
        p.max_reference_tokens = max_reference;
        p.truncate = parse_truncate_policy(truncate);
        p.append_eos = !no_eos;
        return p;
    }
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

void register_generate(CLI::App& app, Action& action) {
    struct Opts {
        ModelOptions model;
        GuardOptions guard;
        std::string prompt;
        int max_new_tokens = 256;
        bool ignore_eos = false, json = false;
    };
    auto opts = std::make_shared<Opts>();
    auto* cmd = app.add_subcommand("generate", "Greedy (temperature 0) continuation of a prompt, or from BOS");
    cmd->footer("Example: memskew generate -m model.gguf -p \"Once upon a time\" -n 64\n"
                "Guarded: memskew generate -m model.gguf -p \"...\" --guard train.jsonl --guard-template alpaca");
    opts->model.add_to(cmd);
    cmd->add_option("--prompt,-p", opts->prompt, "Prompt text (default: start from BOS)");
    cmd->add_option("--max-new-tokens,-n", opts->max_new_tokens, "Most tokens to generate")
        ->check(CLI::PositiveNumber);
    cmd->add_flag("--ignore-eos", opts->ignore_eos, "Keep generating after EOS");
    cmd->add_flag("--json", opts->json, "Machine-readable output on stdout");
    opts->guard.add_to(cmd);
    cmd->callback([&action, opts, cmd] {
        const bool has_prompt = cmd->count("--prompt") > 0;
        opts->guard.validate();
        for (const auto& [key, option] : opts->guard.given) {
            if (option->count() > 0 && opts->guard.data.empty())
                throw CLI::ValidationError(option->get_name() + " needs --guard");
        }
        if (opts->guard.data.empty() && cmd->count("--guard-n") > 0)
            throw CLI::ValidationError("--guard-n needs --guard");
        action = [opts, has_prompt] {
            auto model = load_model(opts->model);
            const Tokenizer& tok = model->tokenizer();
            GenerateRequest req;
            req.prompt = encode_prompt(tok, has_prompt ? opts->prompt : std::string());
            req.max_new_tokens = opts->max_new_tokens;
            GenerateParams params;
            params.stop_at_eos = !opts->ignore_eos;
            std::optional<NgramGuard> guard;
            double guard_seconds = 0.0;  // reading, encoding and the map
            if (!opts->guard.data.empty()) {
                const auto t0 = std::chrono::steady_clock::now();
                TrainingGuardParams gp;
                gp.n = opts->guard.n;
                gp.include_prompt = opts->guard.with_prompt;
                guard = build_training_guard(opts->guard.train_params(), tok, model->config().max_ctx, gp);
                guard_seconds = seconds_since(t0);
                params.guard = &*guard;
            }
            Engine engine(model);
            const GenerateResult res = engine.generate({req}, params).front();
            std::vector<int32_t> shown(res.tokens);
            if (res.reason == StopReason::kEos && !shown.empty()) shown.pop_back();
            const std::string text = continuation_text(tok, req.prompt, shown);
            double sum = 0.0;
            for (float v : res.logprobs) sum += v;
            const double mean_logprob = res.logprobs.empty() ? 0.0 : sum / static_cast<double>(res.logprobs.size());
            if (opts->json) {
                nlohmann::json j = {{"prompt_ids", req.prompt},
                                    {"ids", res.tokens},
                                    {"text", text},
                                    {"n_tokens", res.tokens.size()},
                                    {"stop", stop_reason_name(res.reason)},
                                    {"n_blocked", res.n_blocked},
                                    {"mean_logprob", mean_logprob}};
                if (guard) {
                    j["guard"] = {{"data", opts->guard.data},
                                  {"n", guard->n()},
                                  {"samples", guard->n_sequences()},
                                  {"tokens", guard->n_source_tokens()},
                                  {"contexts", guard->n_contexts()},
                                  {"ngrams", guard->n_ngrams()},
                                  {"memory_bytes", guard->memory_bytes()},
                                  {"build_seconds", guard_seconds},
                                  {"map_seconds", guard->build_seconds()},
                                  {"tokenizer_fingerprint", guard->tokenizer_fingerprint()}};
                }
                print_json(j);
                return;
            }
            fmt::print("{}\n", text);
            if (guard) {
                // On stderr: stdout stays the continuation alone.
                fmt::print(stderr,
                           "guard: {}-grams of {} samples ({} tokens): {} contexts, {:.1f} MiB, built in {:.2f} s "
                           "(map {:.2f} s)\n"
                           "guard: blocked {} of {} steps; mean log-probability of the emitted tokens {:.4f}\n",
                           guard->n(), guard->n_sequences(), guard->n_source_tokens(), guard->n_contexts(),
                           static_cast<double>(guard->memory_bytes()) / (1024.0 * 1024.0), guard_seconds,
                           guard->build_seconds(), res.n_blocked, res.tokens.size(), mean_logprob);
            }
        };
    });
}

}  // namespace memskew::cli
