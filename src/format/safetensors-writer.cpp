// safetensors writer, byte-compatible with the reference implementation's
// layout: "__metadata__" first, tensors sorted by dtype (descending, the
// reference's order, which puts wide types first and keeps every tensor
// aligned to its element size) then by name, header padded with spaces to a
// multiple of 8 so the data section starts 8-byte aligned.
#include <fcntl.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

#include "memskew/error.h"
#include "memskew/file-io.h"
#include "memskew/gguf.h"
#include "memskew/safetensors.h"

namespace memskew {

void SafetensorsWriter::set_metadata(const std::string& key, const std::string& value) { metadata_[key] = value; }

void SafetensorsWriter::check_new(const std::string& name, const std::vector<int64_t>& shape,
                                  int64_t* n_elements) const {
    if (name.empty()) throw InvalidInput("safetensors tensor name is empty");
    if (name == "__metadata__") throw InvalidInput("safetensors tensor name '__metadata__' is reserved");
    for (const PendingTensor& t : tensors_) {
        if (t.name == name) throw InvalidInput(fmt::format("safetensors tensor '{}' added twice", name));
    }
    int64_t n = 1;
    for (int64_t d : shape) {
        if (d < 0) throw InvalidInput(fmt::format("safetensors tensor '{}' has a dimension of size {}", name, d));
        if (__builtin_mul_overflow(n, d, &n)) {
            throw InvalidInput(fmt::format("safetensors tensor '{}' has too many elements", name));
        }
    }
    *n_elements = n;
}

void SafetensorsWriter::add_tensor(const std::string& name, const std::vector<int64_t>& shape, const float* data,
                                   SafetensorsDtype stored) {
    int64_t n = 0;
    check_new(name, shape, &n);
    if (data == nullptr && n > 0) throw InvalidInput(fmt::format("safetensors tensor '{}' has no data", name));
    PendingTensor t{name, stored, shape, {}};
    const size_t count = static_cast<size_t>(n);
    switch (stored) {
        case SafetensorsDtype::kF32:
            t.bytes.resize(count * 4);
            if (count > 0) std::memcpy(t.bytes.data(), data, count * 4);
            break;
        case SafetensorsDtype::kF16:
        case SafetensorsDtype::kBF16: {
            t.bytes.resize(count * 2);
            const bool half = stored == SafetensorsDtype::kF16;
            for (size_t k = 0; k < count; ++k) {
                const uint16_t h = half ? fp32_to_fp16(data[k]) : fp32_to_bf16(data[k]);
                t.bytes[2 * k] = static_cast<uint8_t>(h & 0xff);  // little-endian on any host
                t.bytes[2 * k + 1] = static_cast<uint8_t>(h >> 8);
            }
            break;
        }
        default:
            throw InvalidInput(fmt::format("safetensors tensor '{}': memskew writes float data as F32, F16 or "
                                           "BF16, not {}",
                                           name, safetensors_dtype_name(stored)),
                               "use add_raw() for integer tensors");
    }
    tensors_.push_back(std::move(t));
}

void SafetensorsWriter::add_raw(const std::string& name, SafetensorsDtype dtype, const std::vector<int64_t>& shape,
                                const void* bytes, size_t n_bytes) {
    int64_t n = 0;
    check_new(name, shape, &n);
    uint64_t need = 0;
    if (__builtin_mul_overflow(static_cast<uint64_t>(n), safetensors_dtype_size(dtype), &need) || need != n_bytes) {
        throw InvalidInput(fmt::format("safetensors tensor '{}': {} bytes given, shape needs {} elements of {} ({} "
                                       "bytes each)",
                                       name, n_bytes, n, safetensors_dtype_name(dtype), safetensors_dtype_size(dtype)));
    }
    if (bytes == nullptr && n_bytes > 0) throw InvalidInput(fmt::format("safetensors tensor '{}' has no data", name));
    PendingTensor t{name, dtype, shape, {}};
    t.bytes.resize(n_bytes);
    if (n_bytes > 0) std::memcpy(t.bytes.data(), bytes, n_bytes);
    tensors_.push_back(std::move(t));
}

void SafetensorsWriter::write(const std::string& path) const {
    std::vector<const PendingTensor*> order;
    for (const PendingTensor& t : tensors_) order.push_back(&t);
    std::sort(order.begin(), order.end(), [](const PendingTensor* a, const PendingTensor* b) {
        if (a->dtype != b->dtype) return static_cast<int>(a->dtype) > static_cast<int>(b->dtype);
        return a->name < b->name;
    });

    nlohmann::ordered_json header = nlohmann::ordered_json::object();
    if (!metadata_.empty()) {
        nlohmann::ordered_json meta = nlohmann::ordered_json::object();
        for (const auto& [k, v] : metadata_) meta[k] = v;
        header["__metadata__"] = std::move(meta);
    }
    uint64_t offset = 0;
    for (const PendingTensor* t : order) {
        nlohmann::ordered_json entry = nlohmann::ordered_json::object();
        entry["dtype"] = safetensors_dtype_name(t->dtype);
        entry["shape"] = t->shape;
        entry["data_offsets"] = {offset, offset + t->bytes.size()};
        header[t->name] = std::move(entry);
        offset += t->bytes.size();
    }
    std::string text;
    try {
        text = header.dump();
    } catch (const nlohmann::json::exception& e) {
        // Names and metadata must be valid UTF-8 to form JSON.
        throw InvalidInput(fmt::format("cannot write '{}': {}", path, e.what()),
                           "tensor names and metadata must be valid UTF-8");
    }
    text.append((8 - text.size() % 8) % 8, ' ');
    uint8_t len_bytes[8];
    for (int k = 0; k < 8; ++k) len_bytes[k] = static_cast<uint8_t>(static_cast<uint64_t>(text.size()) >> (8 * k));

    write_file_atomic(path, [&](const ByteSink& put) {
        put(len_bytes, 8);
        put(text.data(), text.size());
        for (const PendingTensor* t : order) put(t->bytes.data(), t->bytes.size());
    });
}

}  // namespace memskew
