// IEEE float16 <-> float, for compact stored vectors (sample embeddings).
// GCC and Clang provide _Float16 on x86-64 and AArch64: conversions round to
// nearest even, use F16C instructions where the target has them, and keep
// NaN, infinities and subnormals.
#pragma once

#include <cstdint>
#include <cstring>

namespace memskew {

inline uint16_t float_to_f16(float f) {
    const _Float16 h = static_cast<_Float16>(f);
    uint16_t bits;
    std::memcpy(&bits, &h, sizeof bits);
    return bits;
}

inline float f16_to_float(uint16_t bits) {
    _Float16 h;
    std::memcpy(&h, &bits, sizeof h);
    return static_cast<float>(h);
}

}  // namespace memskew
