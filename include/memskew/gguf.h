// GGUF v2/v3 reader and writer (https://github.com/ggml-org/ggml/blob/master/docs/gguf.md).
//
// The reader memory-maps the file, parses and validates the header, metadata
// and tensor table up front (every offset and size is checked against the file
// size, so later reads cannot go out of bounds), and dequantizes tensors to
// fp32 on request. It knows nothing about models: model/ interprets the keys.
//
// Shapes follow ggml: ne[0] is the fastest-varying dimension (a row). A
// PyTorch/HF weight of shape [out, in] is stored with ne = {in, out}.
// GgufTensorInfo::torch_shape() gives the reversed (row-major) shape.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace memskew {

enum class GgufType : uint32_t {
    kUint8 = 0, kInt8 = 1, kUint16 = 2, kInt16 = 3, kUint32 = 4, kInt32 = 5,
    kFloat32 = 6, kBool = 7, kString = 8, kArray = 9, kUint64 = 10, kInt64 = 11, kFloat64 = 12,
};

// The ggml tensor types memskew reads. Others are rejected with a clear error.
enum class GgmlType : uint32_t {
    kF32 = 0, kF16 = 1, kQ4_0 = 2, kQ8_0 = 8, kBF16 = 30,
};
const char* ggml_type_name(uint32_t type);  // "F32", "Q4_K", ... or "type 99"

// Storage layout of a ggml tensor type: `block_size` elements take `type_size`
// bytes. Known for every standard ggml type, so open() can bounds-check tensors
// it cannot dequantize.
struct GgmlTypeInfo {
    const char* name;
    int64_t block_size;
    int64_t type_size;
};
// Layout of a ggml type id, or nullptr for an id memskew does not know at all.
const GgmlTypeInfo* ggml_type_info(uint32_t type);
// Whether dequantize() supports the type (F32, F16, BF16, Q8_0, Q4_0).
bool ggml_type_dequantizable(uint32_t type);
const char* gguf_type_name(GgufType type);  // "uint32", "string", ... or "unknown"

// One metadata value. Scalars live in the matching field; arrays in `array`.
struct GgufValue {
    GgufType type = GgufType::kUint32;
    GgufType array_type = GgufType::kUint32;  // element type when type == kArray
    uint64_t u = 0;       // unsigned integers and bool
    int64_t i = 0;        // signed integers
    double f = 0.0;       // floats
    std::string s;        // strings
    std::vector<GgufValue> array;

    bool is_integer() const;
    bool is_number() const;  // integer or float
    // Conversions throw FormatError (naming `what`) when the type does not fit.
    int64_t as_int(const std::string& what = "value") const;
    double as_double(const std::string& what = "value") const;
    bool as_bool(const std::string& what = "value") const;
    const std::string& as_string(const std::string& what = "value") const;
    std::vector<std::string> as_strings(const std::string& what = "value") const;
    std::vector<float> as_floats(const std::string& what = "value") const;
    std::vector<int64_t> as_ints(const std::string& what = "value") const;
    std::string to_display(size_t max_items = 8) const;  // short human-readable form

    static GgufValue from_string(std::string v);
    static GgufValue from_uint32(uint32_t v);
    static GgufValue from_int32(int32_t v);
    static GgufValue from_uint64(uint64_t v);
    static GgufValue from_float32(float v);
    static GgufValue from_bool(bool v);
    static GgufValue from_strings(const std::vector<std::string>& v);
    static GgufValue from_floats(const std::vector<float>& v);
    static GgufValue from_int32s(const std::vector<int32_t>& v);
};

struct GgufTensorInfo {
    std::string name;
    std::vector<int64_t> ne;  // ggml order, ne[0] fastest
    uint32_t type = 0;        // raw ggml type id (see GgmlType)
    uint64_t offset = 0;      // relative to the start of the data section
    uint64_t n_bytes = 0;     // size of the stored data
    int64_t n_elements() const;
    std::vector<int64_t> torch_shape() const;  // reversed ne
};

class GgufFile {
public:
    // Opens, maps and validates `path`. Throws IoError (missing, unreadable) or
    // FormatError (bad magic, unsupported version, truncated, offsets out of
    // range, overlapping tensors, unknown value types), each naming the file.
    static std::shared_ptr<GgufFile> open(const std::string& path);
    ~GgufFile();
    GgufFile(const GgufFile&) = delete;
    GgufFile& operator=(const GgufFile&) = delete;

    const std::string& path() const { return path_; }
    uint32_t version() const { return version_; }
    uint64_t alignment() const { return alignment_; }

    // Metadata, in file order.
    const std::vector<std::pair<std::string, GgufValue>>& metadata() const { return kv_; }
    const GgufValue* find(const std::string& key) const;
    const GgufValue& get(const std::string& key) const;  // FormatError "missing key '...'"
    int64_t get_int(const std::string& key, std::optional<int64_t> fallback = std::nullopt) const;
    double get_double(const std::string& key, std::optional<double> fallback = std::nullopt) const;
    std::string get_string(const std::string& key, std::optional<std::string> fallback = std::nullopt) const;
    bool get_bool(const std::string& key, std::optional<bool> fallback = std::nullopt) const;

    const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
    const GgufTensorInfo* find_tensor(const std::string& name) const;
    const GgufTensorInfo& tensor(const std::string& name) const;  // FormatError if absent

    // Raw bytes of a tensor inside the mapping (valid while this object lives).
    const uint8_t* data(const GgufTensorInfo& t) const;
    // Dequantizes a tensor to fp32, row-major in torch_shape() order. Throws
    // FormatError naming the tensor for unsupported types.
    std::vector<float> dequantize(const GgufTensorInfo& t) const;
    void dequantize_into(const GgufTensorInfo& t, float* out) const;

private:
    GgufFile() = default;
    void parse();  // validates the mapped bytes; fills the fields below
    std::string path_;
    uint32_t version_ = 0;
    uint64_t alignment_ = 32;
    const uint8_t* base_ = nullptr;
    size_t size_ = 0;
    uint64_t data_offset_ = 0;
    std::vector<std::pair<std::string, GgufValue>> kv_;
    std::map<std::string, size_t> kv_index_;
    std::vector<GgufTensorInfo> tensors_;
    std::map<std::string, size_t> tensor_index_;
};

// Dequantization of one block-quantized row segment (exposed for tests).
void dequantize_row(uint32_t type, const uint8_t* src, float* dst, int64_t n_elements);
// fp16/bf16 <-> fp32 conversions (IEEE half; bf16 = upper 16 bits, round-to-nearest-even).
float fp16_to_fp32(uint16_t h);
uint16_t fp32_to_fp16(float f);
float bf16_to_fp32(uint16_t h);
uint16_t fp32_to_bf16(float f);

// Writes GGUF v3 files. Tensors are given as fp32 row-major data with a torch
// shape and stored as F32, F16, BF16, or quantized to Q8_0 / Q4_0 with ggml's
// reference quantizers (rows must be multiples of 32). The file is written to a temporary
// name and renamed into place, so a failed write never leaves a partial file.
class GgufWriter {
public:
    void set(const std::string& key, GgufValue value);  // replaces an existing key
    void add_tensor(const std::string& name, const std::vector<int64_t>& torch_shape,
                    const float* data, GgmlType stored_type = GgmlType::kF32);
    void write(const std::string& path, uint64_t alignment = 32) const;

private:
    struct PendingTensor {
        std::string name;
        std::vector<int64_t> ne;
        GgmlType type;
        std::vector<uint8_t> bytes;
    };
    std::vector<std::pair<std::string, GgufValue>> kv_;
    std::vector<PendingTensor> tensors_;
};

}  // namespace memskew
