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

}  // namespace memskew::analysis_detail
