// GGUF v3 writer: metadata in insertion order, tensors stored as F32/F16/BF16.
//
// The file is written to `path.tmp-<pid>` and renamed into place, so readers
// never see a half-written file and a failure leaves the old file untouched.
#include "memskew/gguf.h"

#include <fcntl.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cerrno>
#include <cstdio>
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "memskew/error.h"
#include "memskew/file-io.h"

namespace memskew {

namespace {

constexpr uint32_t kVersion = 3;
constexpr uint64_t kDefaultAlignment = 32;
constexpr int kMaxArrayDepth = 16;  // the reader's limit

class ByteWriter {
public:
    template <typename T>
    void put(T v) {
        const size_t at = buf_.size();
        buf_.resize(at + sizeof(T));
        std::memcpy(buf_.data() + at, &v, sizeof(T));
    }
    void put_string(const std::string& s) {
        put<uint64_t>(s.size());
        buf_.insert(buf_.end(), s.begin(), s.end());
    }
    void pad_to(uint64_t alignment) {
        buf_.resize((buf_.size() + alignment - 1) / alignment * alignment, 0);
    }
    std::vector<uint8_t>& bytes() { return buf_; }

private:
    std::vector<uint8_t> buf_;
};

template <typename T>
T checked_unsigned(const GgufValue& v, const std::string& key) {
    if (v.u > std::numeric_limits<T>::max()) {
        throw InvalidInput(fmt::format("GGUF key '{}': value {} does not fit in {}", key, v.u,
                                       gguf_type_name(v.type)));
    }
    return static_cast<T>(v.u);
}

template <typename T>
T checked_signed(const GgufValue& v, const std::string& key) {
    if (v.i < std::numeric_limits<T>::min() || v.i > std::numeric_limits<T>::max()) {
        throw InvalidInput(fmt::format("GGUF key '{}': value {} does not fit in {}", key, v.i,
                                       gguf_type_name(v.type)));
    }
    return static_cast<T>(v.i);
}

// Writes the payload of `v` (without its type tag).
void put_value(ByteWriter& w, const GgufValue& v, const std::string& key, int depth) {
    switch (v.type) {
        case GgufType::kUint8: w.put(checked_unsigned<uint8_t>(v, key)); return;
        case GgufType::kUint16: w.put(checked_unsigned<uint16_t>(v, key)); return;
        case GgufType::kUint32: w.put(checked_unsigned<uint32_t>(v, key)); return;
        case GgufType::kUint64: w.put<uint64_t>(v.u); return;
        case GgufType::kInt8: w.put(checked_signed<int8_t>(v, key)); return;
        case GgufType::kInt16: w.put(checked_signed<int16_t>(v, key)); return;
        case GgufType::kInt32: w.put(checked_signed<int32_t>(v, key)); return;
        case GgufType::kInt64: w.put<int64_t>(v.i); return;
        case GgufType::kFloat32: w.put(static_cast<float>(v.f)); return;
        case GgufType::kFloat64: w.put<double>(v.f); return;
        case GgufType::kBool: w.put<uint8_t>(v.u != 0 ? 1 : 0); return;
        case GgufType::kString: w.put_string(v.s); return;
        case GgufType::kArray: {
            if (depth >= kMaxArrayDepth) {
                throw InvalidInput(fmt::format("GGUF key '{}': arrays nested deeper than {} levels", key,
                                               kMaxArrayDepth));
            }
            w.put<uint32_t>(static_cast<uint32_t>(v.array_type));
            w.put<uint64_t>(v.array.size());
            for (size_t k = 0; k < v.array.size(); ++k) {
                if (v.array[k].type != v.array_type) {
                    throw InvalidInput(fmt::format("GGUF key '{}': element {} has type {}, but the array "
                                                   "holds {}",
                                                   key, k, gguf_type_name(v.array[k].type),
                                                   gguf_type_name(v.array_type)));
                }
                put_value(w, v.array[k], key, depth + 1);
            }
            return;
        }
    }
    throw InvalidInput(fmt::format("GGUF key '{}': invalid value type {}", key, static_cast<uint32_t>(v.type)));
}

}  // namespace

void GgufWriter::set(const std::string& key, GgufValue value) {
    for (auto& kv : kv_) {
        if (kv.first == key) {
            kv.second = std::move(value);
            return;
        }
    }
    kv_.emplace_back(key, std::move(value));
}

void GgufWriter::add_tensor(const std::string& name, const std::vector<int64_t>& torch_shape,
                            const float* data, GgmlType stored_type) {
    if (name.empty()) throw InvalidInput("GGUF tensor name is empty");
    for (const PendingTensor& t : tensors_) {
        if (t.name == name) throw InvalidInput(fmt::format("GGUF tensor '{}' added twice", name));
    }
    if (torch_shape.empty() || torch_shape.size() > 4) {
        throw InvalidInput(fmt::format("GGUF tensor '{}' has {} dimensions, expected 1 to 4", name,
                                       torch_shape.size()));
    }
    int64_t n = 1;
    for (int64_t d : torch_shape) {
        if (d < 1) throw InvalidInput(fmt::format("GGUF tensor '{}' has a dimension of size {}", name, d));
        if (__builtin_mul_overflow(n, d, &n)) {
            throw InvalidInput(fmt::format("GGUF tensor '{}' has too many elements", name));
        }
    }
    if (data == nullptr) throw InvalidInput(fmt::format("GGUF tensor '{}' has no data", name));

    PendingTensor t;
    t.name = name;
    t.ne.assign(torch_shape.rbegin(), torch_shape.rend());
    t.type = stored_type;
    const size_t count = static_cast<size_t>(n);
    switch (stored_type) {
        case GgmlType::kF32:
            t.bytes.resize(count * 4);
            std::memcpy(t.bytes.data(), data, count * 4);
            break;
        case GgmlType::kF16:
        case GgmlType::kBF16: {
            t.bytes.resize(count * 2);
            const bool half = stored_type == GgmlType::kF16;
            for (size_t k = 0; k < count; ++k) {
                const uint16_t h = half ? fp32_to_fp16(data[k]) : fp32_to_bf16(data[k]);
                t.bytes[2 * k] = static_cast<uint8_t>(h & 0xff);
                t.bytes[2 * k + 1] = static_cast<uint8_t>(h >> 8);
            }
            break;
        }
        case GgmlType::kQ8_0:
        case GgmlType::kQ4_0: {
            // ggml's reference quantizers (quantize_row_q8_0_ref / quantize_row_q4_0_ref).
            const int64_t row = torch_shape.back();
            if (row % 32 != 0) {
                throw InvalidInput(fmt::format("GGUF tensor '{}': rows of {} elements cannot be split into "
                                               "32-element {} blocks",
                                               name, row, ggml_type_name(static_cast<uint32_t>(stored_type))));
            }
            const bool q8 = stored_type == GgmlType::kQ8_0;
            const size_t n_blocks = count / 32, block_bytes = q8 ? 34 : 18;
            t.bytes.assign(n_blocks * block_bytes, 0);
            for (size_t b = 0; b < n_blocks; ++b) {
                const float* x = data + b * 32;
                uint8_t* out = t.bytes.data() + b * block_bytes;
                float d = 0.0f;
                if (q8) {
                    float amax = 0.0f;
                    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[j]));
                    d = amax / 127.0f;
                    const float id = d != 0.0f ? 1.0f / d : 0.0f;
                    for (int j = 0; j < 32; ++j) out[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(std::roundf(x[j] * id)));
                } else {
                    float amax = 0.0f, max = 0.0f;
                    for (int j = 0; j < 32; ++j) {
                        if (std::fabs(x[j]) > amax) {
                            amax = std::fabs(x[j]);
                            max = x[j];
                        }
                    }
                    d = max / -8.0f;
                    const float id = d != 0.0f ? 1.0f / d : 0.0f;
                    for (int j = 0; j < 16; ++j) {
                        const int lo = std::min(15, static_cast<int>(static_cast<int8_t>(x[j] * id + 8.5f)));
                        const int hi = std::min(15, static_cast<int>(static_cast<int8_t>(x[j + 16] * id + 8.5f)));
                        out[2 + j] = static_cast<uint8_t>(lo | (hi << 4));
                    }
                }
                const uint16_t h = fp32_to_fp16(d);
                out[0] = static_cast<uint8_t>(h & 0xff);
                out[1] = static_cast<uint8_t>(h >> 8);
            }
            break;
        }
        default:
            throw InvalidInput(fmt::format("GGUF tensor '{}': memskew writes F32, F16, BF16, Q8_0 or Q4_0, not {}", name,
                                           ggml_type_name(static_cast<uint32_t>(stored_type))));
    }
    tensors_.push_back(std::move(t));
}

void GgufWriter::write(const std::string& path, uint64_t alignment) const {
    if (alignment == 0 || (alignment & (alignment - 1)) != 0 || alignment > (uint64_t{1} << 30)) {
        throw InvalidInput(fmt::format("GGUF alignment {} is not a power of two", alignment));
    }

    // The reader only knows the alignment from general.alignment, so it must be
    // written whenever it differs from the default (or the caller set the key).
    std::vector<std::pair<std::string, GgufValue>> kv = kv_;
    bool have_alignment = false;
    for (auto& [key, value] : kv) {
        if (key == "general.alignment") {
            value = GgufValue::from_uint32(static_cast<uint32_t>(alignment));
            have_alignment = true;
        }
    }
    if (!have_alignment && alignment != kDefaultAlignment) {
        kv.emplace_back("general.alignment", GgufValue::from_uint32(static_cast<uint32_t>(alignment)));
    }

    // Header, metadata and tensor infos are built in memory (small); tensor
    // data is written straight from the pending buffers.
    ByteWriter w;
    w.put<uint32_t>(0x46554747);  // "GGUF"
    w.put<uint32_t>(kVersion);
    w.put<uint64_t>(tensors_.size());
    w.put<uint64_t>(kv.size());
    for (const auto& [key, value] : kv) {
        w.put_string(key);
        w.put<uint32_t>(static_cast<uint32_t>(value.type));
        put_value(w, value, key, 0);
    }
    std::vector<uint64_t> offsets;
    uint64_t offset = 0;
    for (const PendingTensor& t : tensors_) {
        w.put_string(t.name);
        w.put<uint32_t>(static_cast<uint32_t>(t.ne.size()));
        for (int64_t d : t.ne) w.put<uint64_t>(static_cast<uint64_t>(d));
        w.put<uint32_t>(static_cast<uint32_t>(t.type));
        w.put<uint64_t>(offset);
        offsets.push_back(offset);
        offset = (offset + t.bytes.size() + alignment - 1) / alignment * alignment;
    }
    if (!tensors_.empty()) w.pad_to(alignment);

    write_file_atomic(path, [&](const ByteSink& put) {
        put(w.bytes().data(), w.bytes().size());
        static const std::vector<uint8_t> kZeros(1 << 16, 0);
        uint64_t written = 0;
        for (size_t k = 0; k < tensors_.size(); ++k) {
            // Zero padding up to the tensor's aligned offset.
            uint64_t pad = offsets[k] - written;
            while (pad > 0) {
                const size_t n = static_cast<size_t>(std::min<uint64_t>(pad, kZeros.size()));
                put(kZeros.data(), n);
                pad -= n;
            }
            put(tensors_[k].bytes.data(), tensors_[k].bytes.size());
            written = offsets[k] + tensors_[k].bytes.size();
        }
    });
}

}  // namespace memskew
