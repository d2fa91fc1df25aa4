// The one way a sample becomes token ids (METHOD M1). Training, probing, the
// study, `generate` and `score` all call this file, so an audit scores
// exactly the ids that training fed: same template (applied when the dataset
// was loaded), same BOS, same truncation, same empty-sample policy.
//
// The rules:
//   - prompt    = tokenizer.encode(rendered prompt, add_special=true): BOS
//                 first when the tokenizer adds one (as SFT trainers encode
//                 the prompt). A prompt that encodes to nothing becomes [BOS];
//                 without a BOS token that is an error (or a counted skip).
//   - reference = tokenizer.encode(reference text, add_special=false), cut to
//                 max_reference_tokens when set. No BOS before it. A reference
//                 that encodes to nothing is an error (or a counted skip).
//   - raw text  = the text's ids split at a token offset (TextSplitParams):
//                 the first P tokens are the prompt, the next L the reference.
//   - context   = prompt + reference may use at most max_context positions
//                 (the last reference token is predicted, never fed:
//                 |prompt| + |reference| - 1 <= max_context). Longer samples
//                 keep their prompt and lose the reference's tail (counted as
//                 truncated) or are skipped (counted), by TruncatePolicy; one
//                 whose prompt alone leaves no room is always skipped.
//   - EOS       = training appends EOS after the reference when asked and
//                 when it fits (|prompt| + |reference| <= max_context): the
//                 reference ids themselves never change for it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "memskew/data.h"
#include "memskew/tokenizer.h"

namespace memskew {

// What to do with a sample whose prompt + reference exceed the context.
enum class TruncatePolicy {
    kReference,  // keep the prompt, cut the reference's tail to fit (counted)
    kSkip,       // leave the sample out (counted)
};
TruncatePolicy parse_truncate_policy(const std::string& name);  // "reference" | "skip"
std::string_view truncate_policy_name(TruncatePolicy policy);

// How samples become ids; every field has the same meaning for train and
// probe (they share one set of options on the command line too).
struct EncodeParams {
    int64_t max_context = 0;           // the model's context; <= 0: no limit
    int64_t max_reference_tokens = 0;  // cap the reference at this many tokens (0: whole)
    TruncatePolicy truncate = TruncatePolicy::kReference;
    // Raw text mode (METHOD M1, e.g. 32/32): split each text at a token offset.
    std::optional<TextSplitParams> text_split;
    // Samples whose prompt or reference encodes to no tokens: an error naming
    // the sample (default), or skipped and counted.
    bool skip_empty = false;
    // Training: EOS after the reference, so the model learns to stop.
    bool append_eos = false;
};

// The encoder settings that a job's dataset options decide, given the model's
// context. Train and probe build theirs here, so the same options mean the
// same ids; only append_eos differs (training teaches the model to stop).
EncodeParams encode_params_for(const DatasetParams& data, int64_t max_reference_tokens, TruncatePolicy truncate,
                               const std::optional<TextSplitParams>& text_split, int64_t max_context,
                               bool append_eos);

struct EncodedSample {
    size_t sample = 0;                // index into Dataset::samples
    std::vector<int32_t> prompt;      // never empty
    std::vector<int32_t> reference;   // never empty: the tokens scored and trained
    bool eos = false;                 // an EOS token follows the reference (training)
    bool truncated = false;           // reference cut to the context (or a short raw text)
    int64_t n_reference_full = 0;     // reference tokens before any cut
    // Tokens the model is fed (the last target is predicted, not fed).
    int64_t n_positions() const {
        return static_cast<int64_t>(prompt.size() + reference.size() + (eos ? 1 : 0)) - 1;
    }
};

struct EncodeCounts {
    int64_t n_truncated = 0;      // references cut to the context
    int64_t n_skipped_long = 0;   // too long for the context (TruncatePolicy::kSkip, or no room)
    int64_t n_skipped_short = 0;  // raw text too short to split
    int64_t n_skipped_empty = 0;  // prompt or reference encodes to nothing (skip_empty)
    int64_t n_skipped() const { return n_skipped_long + n_skipped_short + n_skipped_empty; }
};

struct EncodedDataset {
    std::vector<EncodedSample> items;  // in dataset order
    EncodeCounts counts;
};

// Encodes one sample. nullopt when it is skipped (and counted in `counts`).
// Throws InvalidInput naming "data_path:line" and the sample id for an empty
// prompt/reference unless params.skip_empty.
std::optional<EncodedSample> encode_sft_example(const Sample& sample, size_t index, const Tokenizer& tok,
                                                const EncodeParams& params, EncodeCounts& counts,
                                                std::string_view data_path = {});

// Encodes every sample of a dataset. Throws InvalidInput when no sample is
// left (the message gives the counts of what was left out and why).
EncodedDataset encode_sft_dataset(const Dataset& dataset, const Tokenizer& tok, const EncodeParams& params,
                                  std::string_view data_path = {});

// A free-standing prompt (`generate`, `score`): the prompt rule above; an empty
// text gives [BOS]. InvalidInput when the tokenizer has no BOS to start from.
std::vector<int32_t> encode_prompt(const Tokenizer& tok, std::string_view text);
// A free-standing reference: the reference rule above (InvalidInput when empty).
std::vector<int32_t> encode_reference(const Tokenizer& tok, std::string_view text);

}  // namespace memskew
