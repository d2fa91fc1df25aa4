#include "cli.h"

#include <algorithm>
#include <iostream>
#include <tuple>

#include "memskew/engine.h"

namespace memskew::cli {

void ModelOptions::add_to(CLI::App* cmd) {
    cmd->add_option("--model,-m", model, "Model: a GGUF file or a Hugging Face folder")->required();
    cmd->add_option("--dtype", dtype, "Compute dtype: f32 or bf16")
        ->check(CLI::IsMember({"f32", "fp32", "float32", "bf16", "bfloat16"}));
    cmd->add_option("--threads", threads, "CPU threads (0: all cores)")->check(CLI::NonNegativeNumber);
}

void DatasetOptions::add_to(CLI::App* cmd) {
    cmd->add_option("--data,-d", data, "Dataset (JSONL, JSON array or CSV)")->required();
    for (const DatasetOption& o : dataset_options()) {
        std::string name = std::string("--") + o.key;
        std::replace(name.begin(), name.end(), '_', '-');
        given[o.key] = o.is_flag ? cmd->add_flag(name, flags[o.key], o.help) : cmd->add_option(name, values[o.key], o.help);
    }
    cmd->add_option("--prefix-tokens", prefix_tokens, "Raw text mode: prompt = first P tokens")
        ->check(CLI::PositiveNumber);
    cmd->add_option("--suffix-tokens", suffix_tokens, "Raw text mode: reference = next L tokens")
        ->check(CLI::PositiveNumber);
    cmd->add_option("--max-reference-tokens", max_reference, "Use at most this many reference tokens (0: all)")
        ->check(CLI::NonNegativeNumber);
    cmd->add_option("--truncate", truncate, "Samples longer than the context: reference (cut its tail) or skip")
        ->check(CLI::IsMember({"reference", "skip"}));
    cmd->add_option("--limit", limit, "Use the first N samples");
    cmd->add_option("--sample", sample, "Use a random subset of N samples (see --seed)");
    cmd->add_option("--shard", shard, "i/n: use the i-th of n deterministic parts (probe: merge with `memskew merge`)");
}

void DatasetOptions::validate() const {
    if ((prefix_tokens > 0) != (suffix_tokens > 0))
        throw CLI::ValidationError("--prefix-tokens and --suffix-tokens go together");
}

DatasetParams DatasetOptions::dataset_params(uint64_t seed) const {
    DatasetParams d;
    for (const DatasetOption& o : dataset_options()) {
        if (given.at(o.key)->count() == 0) continue;
        o.apply(d, o.is_flag ? (flags.at(o.key) ? "true" : "false") : values.at(o.key));
    }
    if (prefix_tokens > 0) d.format = RecordFormat::kText;
    d.limit = limit;
    d.subset = sample;
    d.seed = seed;
    if (!shard.empty()) std::tie(d.shard_index, d.n_shards) = parse_shard(shard);
    return d;
}

std::optional<TextSplitParams> DatasetOptions::text_split() const {
    if (prefix_tokens <= 0) return std::nullopt;
    return TextSplitParams{static_cast<size_t>(prefix_tokens), static_cast<size_t>(suffix_tokens),
                           ShortTextPolicy::kSkip, 1};
}

TruncatePolicy DatasetOptions::truncate_policy() const { return parse_truncate_policy(truncate); }

std::shared_ptr<Model> load_model(const ModelOptions& opts) {
    LoadParams params;
    params.dtype = parse_dtype(opts.dtype);
    params.n_threads = opts.threads;
    return Model::load(opts.model, params);
}

void print_json(const nlohmann::json& j) { std::cout << j.dump(2) << "\n"; }

std::string printable(const std::string& text) {
    std::string out;
    for (char c : text) {
        if (c == '\n') out += "\\n";
        else if (c == '\t') out += "\\t";
        else if (c == '\r') out += "\\r";
        else out += c;
    }
    return out;
}

}  // namespace memskew::cli
