#include "cli.h"

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
    cmd->add_option("--format", format, "Record format: auto, alpaca, gpteacher, prompt-completion, qa, chat, text");
    cmd->add_option("--template", tmpl, "Prompt template: plain, alpaca, alpaca-original, chatml, llama-2, llama-3, "
                                        "or a string with {instruction} {input} {prompt} {system}");
    cmd->add_option("--system", system, "System text for samples that have none");
    cmd->add_flag("--reference-end-marker", end_marker, "Append the template's end-of-turn marker to references");
    cmd->add_option("--prompt-field", prompt_field, "Field holding the instruction/prompt/question/text");
    cmd->add_option("--input-field", input_field, "Field holding the input (alpaca style)");
    cmd->add_option("--response-field", response_field, "Field holding the reference response");
    cmd->add_option("--messages-field", messages_field, "Field holding chat messages");
    cmd->add_option("--system-field", system_field, "Field holding the system text (default: system)");
    cmd->add_option("--id-field", id_field, "Field holding the sample id (else a content hash)");
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
    cmd->add_flag("--skip-bad", skip_bad, "Skip (and count) malformed records instead of failing");
    cmd->add_flag("--skip-empty", skip_empty, "Skip (and count) samples with an empty prompt or reference");
    cmd->add_flag("--dedupe-ids", dedupe_ids, "Give duplicate ids a #2, #3... suffix instead of failing");
}

void DatasetOptions::validate() const {
    if ((prefix_tokens > 0) != (suffix_tokens > 0))
        throw CLI::ValidationError("--prefix-tokens and --suffix-tokens go together");
}

DatasetParams DatasetOptions::dataset_params(uint64_t seed) const {
    DatasetParams d;
    if (prefix_tokens > 0) d.format = RecordFormat::kText;
    else if (format != "auto") d.format = parse_record_format(format);
    d.prompt_template = parse_template(tmpl);
    d.prompt_template.reference_end_marker = end_marker;
    d.prompt_template.default_system = system;
    d.prompt_field = prompt_field;
    d.input_field = input_field;
    d.response_field = response_field;
    d.messages_field = messages_field;
    if (!system_field.empty()) d.system_field = system_field;
    d.id_field = id_field;
    d.limit = limit;
    d.subset = sample;
    d.seed = seed;
    d.skip_bad = skip_bad;
    d.skip_empty_reference = skip_empty;
    d.dedupe_ids = dedupe_ids;
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
