// The Goldfish keep mask (include/memskew/goldfish.h has the rule).
#include "memskew/goldfish.h"

#include <fmt/format.h>
#include <xxhash.h>

#include <algorithm>

#include "memskew/error.h"

namespace memskew {

void validate_goldfish(int64_t k, int64_t h) {
    if (k < 0 || k == 1)
        throw InvalidInput(fmt::format("--goldfish-k must be at least 2, got {}{}", k,
                                       k == 1 ? " (1 would drop every token after the first --goldfish-h - 1 of each "
                                                "reference)"
                                              : ""),
                           "Goldfish drops 1 in K reference tokens from the loss: the paper uses K = 4; 0 turns it off");
    if (h < 1)
        throw InvalidInput(fmt::format("--goldfish-h must be at least 1, got {}", h),
                           "H is the number of preceding tokens hashed to choose the dropped tokens (the paper uses 13)");
}

uint64_t goldfish_hash(const int32_t* ids, size_t n) {
    // Little-endian bytes, whatever the host's order. Windows are short (h
    // tokens, 13 by default): a stack buffer covers them without allocation.
    constexpr size_t kStack = 64;
    uint8_t stack[4 * kStack];
    std::vector<uint8_t> heap;
    uint8_t* buf = stack;
    if (n > kStack) {
        heap.resize(4 * n);
        buf = heap.data();
    }
    for (size_t i = 0; i < n; ++i) {
        const uint32_t v = static_cast<uint32_t>(ids[i]);
        buf[4 * i] = static_cast<uint8_t>(v);
        buf[4 * i + 1] = static_cast<uint8_t>(v >> 8);
        buf[4 * i + 2] = static_cast<uint8_t>(v >> 16);
        buf[4 * i + 3] = static_cast<uint8_t>(v >> 24);
    }
    return XXH3_64bits(buf, 4 * n);  // seed 0
}

std::vector<uint8_t> goldfish_keep_mask(const std::vector<int32_t>& prompt, const std::vector<int32_t>& reference,
                                        int64_t k, int64_t h) {
    std::vector<uint8_t> keep(reference.size(), 1);
    if (!goldfish_enabled(k)) return keep;
    validate_goldfish(k, h);
    const size_t p = prompt.size(), H = static_cast<size_t>(h);
    // The first eligible position: j >= h - 1 and a full window (p + j >= h).
    const size_t first = std::max(H - 1, p >= H ? size_t{0} : H - p);
    if (first >= reference.size()) return keep;
    // The window may straddle the prompt and the reference: hash one buffer of
    // the fed sequence from the first window on.
    std::vector<int32_t> seq;
    const size_t start = p + first - H;  // index in prompt ‖ reference of the first window's first token
    seq.reserve(p + reference.size() - start);
    for (size_t i = start; i < p; ++i) seq.push_back(prompt[i]);
    const size_t ref_from = start > p ? start - p : 0;
    seq.insert(seq.end(), reference.begin() + static_cast<std::ptrdiff_t>(ref_from), reference.end());
    const uint64_t K = static_cast<uint64_t>(k);
    for (size_t j = first; j < reference.size(); ++j) {
        const size_t w = p + j - H - start;  // window start in seq
        if (goldfish_hash(seq.data() + w, H) % K == 0) keep[j] = 0;
    }
    return keep;
}

GoldfishCounts goldfish_counts(size_t prompt_size, const std::vector<uint8_t>& keep, int64_t k, int64_t h) {
    GoldfishCounts c;
    c.tokens = static_cast<int64_t>(keep.size());
    if (!goldfish_enabled(k) || h < 1) return c;
    const size_t H = static_cast<size_t>(h);
    const size_t first = std::max(H - 1, prompt_size >= H ? size_t{0} : H - prompt_size);
    c.eligible = keep.size() > first ? static_cast<int64_t>(keep.size() - first) : 0;
    for (uint8_t v : keep) c.dropped += v == 0;
    return c;
}

}  // namespace memskew
