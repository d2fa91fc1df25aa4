// ggml tensor types: block layouts, fp16/bf16 conversions and dequantization
// of the types memskew reads (F32, F16, BF16, Q8_0, Q4_0).
//
// Block layouts follow ggml's block structs (ggml-common.h); quantized blocks
// start with an fp16 scale `d`.
#include "memskew/gguf.h"

#include <fmt/format.h>

#include <cstdio>
#include <cstring>

#include "memskew/error.h"

namespace memskew {

namespace {

// Indexed by ggml type id. Gaps (ids 4, 5: Q4_2/Q4_3 removed before GGUF
// existed; 36-38: interleaved IQ4_NL variants that were never written to
// files) have a null name. The sizes are the block structs' field sizes, so
// open() can bounds-check tensors even of types memskew cannot dequantize.
constexpr GgmlTypeInfo kTypeInfos[] = {
    {"F32", 1, 4},          // 0
    {"F16", 1, 2},          // 1
    {"Q4_0", 32, 18},       // 2: fp16 d + 16 bytes of nibbles
    {"Q4_1", 32, 20},       // 3
    {nullptr, 0, 0},        // 4
    {nullptr, 0, 0},        // 5
    {"Q5_0", 32, 22},       // 6
    {"Q5_1", 32, 24},       // 7
    {"Q8_0", 32, 34},       // 8: fp16 d + 32 int8
    {"Q8_1", 32, 36},       // 9
    {"Q2_K", 256, 84},      // 10
    {"Q3_K", 256, 110},     // 11
    {"Q4_K", 256, 144},     // 12
    {"Q5_K", 256, 176},     // 13
    {"Q6_K", 256, 210},     // 14
    {"Q8_K", 256, 292},     // 15
    {"IQ2_XXS", 256, 66},   // 16
    {"IQ2_XS", 256, 74},    // 17
    {"IQ3_XXS", 256, 98},   // 18
    {"IQ1_S", 256, 50},     // 19
    {"IQ4_NL", 32, 18},     // 20
    {"IQ3_S", 256, 110},    // 21
    {"IQ2_S", 256, 82},     // 22
    {"IQ4_XS", 256, 136},   // 23
    {"I8", 1, 1},           // 24
    {"I16", 1, 2},          // 25
    {"I32", 1, 4},          // 26
    {"I64", 1, 8},          // 27
    {"F64", 1, 8},          // 28
    {"IQ1_M", 256, 56},     // 29
    {"BF16", 1, 2},         // 30
    {"Q4_0_4_4", 32, 18},   // 31: ARM repacks of Q4_0, found in older files
    {"Q4_0_4_8", 32, 18},   // 32
    {"Q4_0_8_8", 32, 18},   // 33
    {"TQ1_0", 256, 54},     // 34
    {"TQ2_0", 256, 66},     // 35
    {nullptr, 0, 0},        // 36
    {nullptr, 0, 0},        // 37
    {nullptr, 0, 0},        // 38
    {"MXFP4", 32, 17},      // 39
};
constexpr uint32_t kNumTypeInfos = sizeof(kTypeInfos) / sizeof(kTypeInfos[0]);

constexpr int64_t kQK = 32;  // elements per Q8_0 / Q4_0 block

inline uint32_t float_bits(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    return u;
}

inline float bits_float(uint32_t u) {
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

inline uint16_t load_u16(const uint8_t* p) {
    return static_cast<uint16_t>(p[0] | (p[1] << 8));
}

}  // namespace

const GgmlTypeInfo* ggml_type_info(uint32_t type) {
    if (type >= kNumTypeInfos || kTypeInfos[type].name == nullptr) return nullptr;
    return &kTypeInfos[type];
}

const char* ggml_type_name(uint32_t type) {
    if (const GgmlTypeInfo* info = ggml_type_info(type)) return info->name;
    // Per-thread so concurrent callers do not overwrite each other's text.
    thread_local char buf[32];
    std::snprintf(buf, sizeof(buf), "type %u", type);
    return buf;
}

bool ggml_type_dequantizable(uint32_t type) {
    switch (static_cast<GgmlType>(type)) {
        case GgmlType::kF32:
        case GgmlType::kF16:
        case GgmlType::kBF16:
        case GgmlType::kQ8_0:
        case GgmlType::kQ4_0:
            return true;
    }
    return false;
}

float fp16_to_fp32(uint16_t h) {
    const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ff;
    if (exp == 0x1f) return bits_float(sign | 0x7f800000u | (mant << 13));  // inf / NaN
    if (exp == 0) {
        if (mant == 0) return bits_float(sign);
        // Subnormal half: mant * 2^-24. Shift the leading 1 into the implicit
        // position; every half subnormal is a normal float.
        exp = 113;  // 127 - 14
        while ((mant & 0x400) == 0) {
            mant <<= 1;
            --exp;
        }
        return bits_float(sign | (exp << 23) | ((mant & 0x3ff) << 13));
    }
    return bits_float(sign | ((exp + 112) << 23) | (mant << 13));
}

uint16_t fp32_to_fp16(float f) {
    const uint32_t x = float_bits(f);
    const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000);
    const uint32_t abs = x & 0x7fffffffu;
    if (abs > 0x7f800000u) {
        // NaN: keep the top payload bits, force quiet so it cannot become inf.
        return static_cast<uint16_t>(sign | 0x7e00 | ((abs >> 13) & 0x3ff));
    }
    // 65520 = halfway between 65504 (largest half) and 65536; the tie rounds to
    // the even neighbour, which is inf. So everything >= 65520 is inf.
    if (abs >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00);
    const uint32_t exp = abs >> 23;
    if (exp < 113) {
        // Result is a half subnormal (or zero): round abs / 2^-24 to an integer.
        if (exp < 102) return sign;  // < 2^-25: rounds to zero (tie at 2^-25 is handled below)
        const uint32_t mant = (abs & 0x7fffffu) | 0x800000u;
        const uint32_t shift = 126 - exp;  // 14..24
        uint32_t r = mant >> shift;
        const uint32_t rem = mant & ((1u << shift) - 1);
        const uint32_t half = 1u << (shift - 1);
        if (rem > half || (rem == half && (r & 1))) ++r;  // may carry into the smallest normal
        return static_cast<uint16_t>(sign | r);
    }
    uint32_t h = ((exp - 112) << 10) | ((abs >> 13) & 0x3ff);
    const uint32_t rem = abs & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) ++h;  // carry may bump the exponent
    return static_cast<uint16_t>(sign | h);
}

float bf16_to_fp32(uint16_t h) {
    return bits_float(static_cast<uint32_t>(h) << 16);
}

uint16_t fp32_to_bf16(float f) {
    const uint32_t x = float_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) {
        return static_cast<uint16_t>((x >> 16) | 0x40);  // quiet NaN, never inf
    }
    // Round to nearest even: add 0x7fff plus the lowest kept bit.
    return static_cast<uint16_t>((x + 0x7fffu + ((x >> 16) & 1)) >> 16);
}

void dequantize_row(uint32_t type, const uint8_t* src, float* dst, int64_t n_elements) {
    if (n_elements < 0) {
        throw InvalidInput(fmt::format("dequantize_row: negative element count {}", n_elements));
    }
    switch (static_cast<GgmlType>(type)) {
        case GgmlType::kF32:
            std::memcpy(dst, src, static_cast<size_t>(n_elements) * 4);
            return;
        case GgmlType::kF16:
            for (int64_t i = 0; i < n_elements; ++i) dst[i] = fp16_to_fp32(load_u16(src + 2 * i));
            return;
        case GgmlType::kBF16:
            for (int64_t i = 0; i < n_elements; ++i) {
                dst[i] = bits_float(static_cast<uint32_t>(load_u16(src + 2 * i)) << 16);
            }
            return;
        case GgmlType::kQ8_0:
        case GgmlType::kQ4_0: {
            if (n_elements % kQK != 0) {
                throw InvalidInput(fmt::format(
                    "dequantize_row: {} elements of type {} is not a whole number of {}-element blocks",
                    n_elements, ggml_type_name(type), kQK));
            }
            const int64_t n_blocks = n_elements / kQK;
            if (static_cast<GgmlType>(type) == GgmlType::kQ8_0) {
                // block: fp16 d, int8 qs[32]; x[j] = qs[j] * d
                for (int64_t b = 0; b < n_blocks; ++b, src += 34, dst += kQK) {
                    const float d = fp16_to_fp32(load_u16(src));
                    const int8_t* qs = reinterpret_cast<const int8_t*>(src + 2);
                    for (int j = 0; j < kQK; ++j) dst[j] = static_cast<float>(qs[j]) * d;
                }
            } else {
                // block: fp16 d, uint8 qs[16]; low nibble of qs[j] is x[j], the
                // high nibble is x[j + 16]; x = (nibble - 8) * d
                for (int64_t b = 0; b < n_blocks; ++b, src += 18, dst += kQK) {
                    const float d = fp16_to_fp32(load_u16(src));
                    const uint8_t* qs = src + 2;
                    for (int j = 0; j < kQK / 2; ++j) {
                        dst[j] = static_cast<float>((qs[j] & 0x0f) - 8) * d;
                        dst[j + kQK / 2] = static_cast<float>((qs[j] >> 4) - 8) * d;
                    }
                }
            }
            return;
        }
    }
    throw FormatError(
        fmt::format("type {} cannot be dequantized; supported: F32, F16, BF16, Q8_0, Q4_0",
                    ggml_type_name(type)),
        "convert the model with llama.cpp's quantize tool to Q8_0 or F16");
}

}  // namespace memskew
