// The one sample encoder (see include/memskew/sft-encoder.h for the rules).
#include "memskew/sft-encoder.h"

#include <fmt/format.h>

#include "memskew/error.h"

namespace memskew {

TruncatePolicy parse_truncate_policy(const std::string& name) {
    if (name == "reference") return TruncatePolicy::kReference;
    if (name == "skip") return TruncatePolicy::kSkip;
    throw InvalidInput(fmt::format("unknown truncation policy '{}'", name), "use reference or skip");
}

std::string_view truncate_policy_name(TruncatePolicy policy) {
    return policy == TruncatePolicy::kSkip ? "skip" : "reference";
}

EncodeParams encode_params_for(const DatasetParams& data, int64_t max_reference_tokens, TruncatePolicy truncate,
                               const std::optional<TextSplitParams>& text_split, int64_t max_context,
                               bool append_eos) {
    EncodeParams e;
    e.max_context = max_context;
    e.max_reference_tokens = max_reference_tokens;
    e.truncate = truncate;
    e.text_split = text_split;
    e.skip_empty = data.skip_empty_reference;
    e.append_eos = append_eos;
    return e;
}

namespace {

// The prompt rule: BOS as the tokenizer adds it; an empty prompt becomes
// [BOS]. Empty only when the tokenizer has no BOS token.
std::vector<int32_t> prompt_ids(const Tokenizer& tok, std::string_view text) {
    std::vector<int32_t> ids = tok.encode(text, true);
    if (ids.empty() && tok.bos() >= 0) ids.push_back(tok.bos());
    return ids;
}

std::string where(std::string_view data_path, const Sample& s) {
    if (data_path.empty()) return fmt::format("sample '{}'", s.id);
    return fmt::format("{}:{}: sample '{}'", data_path, s.line, s.id);
}

}  // namespace

std::optional<EncodedSample> encode_sft_example(const Sample& s, size_t index, const Tokenizer& tok,
                                                const EncodeParams& p, EncodeCounts& counts,
                                                std::string_view data_path) {
    EncodedSample e;
    e.sample = index;
    if (p.text_split) {
        TextSplitCounts split_counts;
        auto split = split_text_tokens(tok.encode(s.text, false), *p.text_split, &split_counts);
        if (!split) {
            counts.n_skipped_short++;
            return std::nullopt;
        }
        e.prompt = std::move(split->prompt);
        e.reference = std::move(split->reference);
        e.truncated = split->truncated;
    } else {
        e.prompt = prompt_ids(tok, s.prompt);
        e.reference = tok.encode(s.reference, false);
    }
    if (e.prompt.empty()) {
        if (p.skip_empty) {
            counts.n_skipped_empty++;
            return std::nullopt;
        }
        throw InvalidInput(fmt::format("{} has an empty prompt and the tokenizer has no BOS token to start from",
                                       where(data_path, s)),
                           "use --skip-empty to leave such samples out");
    }
    if (e.reference.empty()) {
        if (p.skip_empty) {
            counts.n_skipped_empty++;
            return std::nullopt;
        }
        throw InvalidInput(fmt::format("the reference of {} encodes to no tokens", where(data_path, s)),
                           "use --skip-empty to leave such samples out");
    }
    e.n_reference_full = static_cast<int64_t>(e.reference.size());
    if (p.max_reference_tokens > 0 && static_cast<int64_t>(e.reference.size()) > p.max_reference_tokens)
        e.reference.resize(static_cast<size_t>(p.max_reference_tokens));
    const int64_t n_prompt = static_cast<int64_t>(e.prompt.size());
    if (p.max_context > 0) {
        // Reference tokens that fit: |prompt| + keep - 1 <= max_context.
        const int64_t keep = p.max_context - n_prompt + 1;
        if (static_cast<int64_t>(e.reference.size()) > keep) {
            if (p.truncate == TruncatePolicy::kSkip || keep < 1) {
                counts.n_skipped_long++;
                return std::nullopt;
            }
            e.reference.resize(static_cast<size_t>(keep));
            e.truncated = true;
            counts.n_truncated++;
        }
    }
    if (p.append_eos && tok.eos() >= 0)
        e.eos = p.max_context <= 0 || n_prompt + static_cast<int64_t>(e.reference.size()) <= p.max_context;
    return e;
}

EncodedDataset encode_sft_dataset(const Dataset& ds, const Tokenizer& tok, const EncodeParams& p,
                                  std::string_view data_path) {
    EncodedDataset out;
    out.items.reserve(ds.samples.size());
    for (size_t i = 0; i < ds.samples.size(); ++i) {
        if (auto e = encode_sft_example(ds.samples[i], i, tok, p, out.counts, data_path))
            out.items.push_back(std::move(*e));
    }
    if (out.items.empty()) {
        const EncodeCounts& c = out.counts;
        throw InvalidInput(fmt::format("{}: no sample is left to use ({} samples: {} too long for the context of {} "
                                       "tokens, {} too short to split, {} empty)",
                                       data_path.empty() ? "dataset" : std::string(data_path), ds.samples.size(),
                                       c.n_skipped_long, p.max_context, c.n_skipped_short, c.n_skipped_empty),
                           "check --max-reference-tokens, --truncate, --prefix-tokens/--suffix-tokens and the "
                           "model's context");
    }
    return out;
}

std::vector<int32_t> encode_prompt(const Tokenizer& tok, std::string_view text) {
    std::vector<int32_t> ids = prompt_ids(tok, text);
    if (ids.empty())
        throw InvalidInput("the prompt is empty and the tokenizer has no BOS token to start from", "give a prompt");
    return ids;
}

std::vector<int32_t> encode_reference(const Tokenizer& tok, std::string_view text) {
    std::vector<int32_t> ids = tok.encode(text, false);
    if (ids.empty()) throw InvalidInput("the reference encodes to no tokens", "give a non-empty reference");
    return ids;
}

}  // namespace memskew
