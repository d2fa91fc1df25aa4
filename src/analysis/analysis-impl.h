// Internals shared by the analysis sources (private).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "memskew/analysis.h"

namespace memskew::analysis_detail {

// What M9 needs of one sample, gathered from the token stream.
struct PredictorSample {
    uint64_t prompt_key = 0;
    bool has_prompt = false;
    bool exact = false;          // argmax == reference at every position
    uint32_t offset = 0;         // into the flat token arrays (reference, argmax)
    uint32_t length = 0;         // L
    std::size_t column = 0;      // index into RunColumns (sample id)
};

struct PredictorInput {
    std::vector<PredictorSample> samples;
    std::vector<int32_t> reference;  // flat, samples[i].offset ..
    std::vector<int32_t> argmax;
    std::string prompt_key_kind;     // "prompt_text"
};

// M9 over the gathered samples (src/analysis/predictors.cpp).
PredictorSection compute_predictors(const PredictorInput& input, const RunColumns& columns,
                                    std::size_t max_examples);

// The selected run's samples with n_pre, as the sections see them.
struct NPreView {
    const std::vector<std::size_t>& column;  // index into RunColumns
    const std::vector<int64_t>& n_pre;
    std::vector<uint8_t> exact;              // n_pre == L (0 where unknown)
};

// M10 and the M12 triage (src/analysis/similarity-section.cpp). Needs the M9
// section for its per-sample unambiguous prefix (empty: that signal is left out).
SimilaritySection compute_similarity_section(const std::vector<RunInput>& runs, std::size_t selected,
                                             const NPreView& view, const PredictorSection& predictors,
                                             const AnalyzeParams& params);

// M12 on the selected run (src/analysis/mitigation.cpp).
MitigationSection compute_mitigation(const RunInput& run);

}  // namespace memskew::analysis_detail
