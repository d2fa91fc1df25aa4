// bfloat16 <-> float as plain bit operations, so loops over them vectorize.
// Rounding is round-to-nearest-even with NaN kept NaN, the same as
// c10::BFloat16 (round_to_nearest_even), so kernels written with these give
// bit-identical results to LibTorch's own bf16 casts.
#pragma once

#include <cstdint>
#include <cstring>

namespace memskew {

inline float bf16_to_float(uint16_t v) {
    const uint32_t u = static_cast<uint32_t>(v) << 16;
    float f;
    std::memcpy(&f, &u, sizeof f);
    return f;
}

inline uint16_t float_to_bf16(float f) {
    uint32_t u;
    std::memcpy(&u, &f, sizeof u);
    if (f != f) return UINT16_C(0x7FC0);  // NaN
    u += UINT32_C(0x7FFF) + ((u >> 16) & 1);
    return static_cast<uint16_t>(u >> 16);
}

}  // namespace memskew
