// Where the reproduced prefix ends in a reference *text*. The store keeps
// token ids but the report has no tokenizer, so the boundary is found from
// the texts: exactly from the generated output when it is stored, else
// approximately by the share n_pre / L of the reference's characters.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace memskew::report {

// Code points in a UTF-8 string (invalid bytes count one each).
std::size_t utf8_length(std::string_view text);
// Bytes of the first `n_chars` code points (the whole string when shorter).
std::size_t utf8_prefix_bytes(std::string_view text, std::size_t n_chars);

enum class MatchMethod {
    kNone,        // n_pre = 0: nothing reproduced (exact)
    kWhole,       // n_pre = L: the whole reference (exact)
    kGenerated,   // longest common prefix of generated text and reference (exact in characters)
    kProportion,  // n_pre / L of the characters, snapped to a nearby space (approximate)
};

struct MatchBoundary {
    std::size_t bytes = 0;  // the reproduced prefix is reference[0, bytes), on a code point boundary
    MatchMethod method = MatchMethod::kNone;
    bool exact = true;
};

MatchBoundary match_boundary(std::string_view reference, const std::optional<std::string>& generated,
                             int64_t n_pre, int64_t length);

}  // namespace memskew::report
