// Goldfish loss (Hans et al. 2024, "Be like a Goldfish, Don't Memorize!"):
// training leaves a pseudo-random 1 in K reference tokens out of the loss, so
// the model never learns to produce a whole training passage verbatim. The
// choice is a hash of the token's context, not a random draw: a passage that
// repeats (in other samples, at other offsets, in every epoch) has the same
// tokens dropped every time, so repetition cannot fill the gaps in.
//
// The rule (src/data/goldfish.cpp), stable across machines and versions:
//   the fed sequence is s = prompt ‖ reference (the reference with EOS, when
//   training appends one: EOS is a reference token like any other);
//   reference token r_j (0-based j) sits at s[p + j], p = |prompt|;
//   r_j is eligible when j >= h - 1 and p + j >= h (h tokens precede it);
//   an eligible r_j is dropped when
//     XXH3_64bits(s[p + j - h], ..., s[p + j - 1] as int32 little-endian, seed 0) % k == 0;
//   the first h - 1 reference tokens are always kept.
// The window is the h tokens immediately before r_j and may reach back into
// the prompt; it excludes r_j itself, so the decision depends on the context
// only (the model is never taught what follows that context, whatever it is).
// LibTorch-free (memskew_core), so unit tests can call it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace memskew {

// The rule above in words, as stored beside checkpoints (memskew-train.json).
inline constexpr const char* kGoldfishHashRule =
    "xxh3-64 (seed 0) of the h token ids immediately before the token in prompt+reference, as int32 "
    "little-endian; drop when hash % k == 0; the first h-1 reference tokens are always kept";

// k = 0 (and 1, for the library) turns Goldfish off: nothing is dropped.
inline bool goldfish_enabled(int64_t k) { return k >= 2; }

// Refuses what `memskew train --goldfish-k K --goldfish-h H` must not accept
// (InvalidInput): k other than 0 (off) below 2 (k = 1 would drop every
// eligible token), h below 1.
void validate_goldfish(int64_t k, int64_t h);

// XXH3-64, seed 0, of `n` ids written as int32 little-endian (the bytes are
// laid out explicitly, so big-endian hosts agree).
uint64_t goldfish_hash(const int32_t* ids, size_t n);

// One entry per reference token: 1 keeps it in the loss, 0 drops it. All ones
// when k < 2. Throws InvalidInput for h < 1 when enabled.
std::vector<uint8_t> goldfish_keep_mask(const std::vector<int32_t>& prompt, const std::vector<int32_t>& reference,
                                        int64_t k, int64_t h);

// Counts over reference tokens, for the realised drop fraction.
struct GoldfishCounts {
    int64_t tokens = 0;    // reference tokens (EOS included when trained)
    int64_t eligible = 0;  // with a full window and j >= h - 1
    int64_t dropped = 0;
    // dropped / tokens and dropped / eligible (0 when there is none).
    double drop_fraction() const { return tokens > 0 ? static_cast<double>(dropped) / tokens : 0.0; }
    double drop_fraction_eligible() const { return eligible > 0 ? static_cast<double>(dropped) / eligible : 0.0; }
    GoldfishCounts& operator+=(const GoldfishCounts& o) {
        tokens += o.tokens;
        eligible += o.eligible;
        dropped += o.dropped;
        return *this;
    }
};
// The counts of one sample's mask (as goldfish_keep_mask() builds it).
GoldfishCounts goldfish_counts(size_t prompt_size, const std::vector<uint8_t>& keep, int64_t k, int64_t h);

}  // namespace memskew
