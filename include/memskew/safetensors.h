// safetensors reader and writer (https://github.com/huggingface/safetensors).
//
// Layout: uint64 little-endian header length N, N bytes of JSON
//   {"__metadata__": {str: str}, "name": {"dtype": "F32", "shape": [..],
//    "data_offsets": [begin, end]}, ...}
// then the data section; offsets are relative to its first byte.
//
// The reader memory-maps the file and validates the whole header up front
// (offsets inside the data section, begin <= end, no overlaps, byte size ==
// product(shape) * dtype size, known dtypes), so data() never hands out a
// pointer past the file, however hostile the file. Holes between tensors and
// trailing bytes are tolerated (the reference implementation rejects them;
// they cannot cause out-of-bounds reads).
//
// Shapes are row-major (PyTorch order), unlike GGUF's ne[].
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace memskew {

// The dtypes of the safetensors format that have a whole-byte element size.
// Sub-byte types (F4, F6_*) are rejected as unknown.
enum class SafetensorsDtype {
    kBool, kU8, kI8, kF8_E5M2, kF8_E4M3, kF8_E8M0, kI16, kU16, kF16, kBF16,
    kI32, kU32, kF32, kF64, kI64, kU64,
};
const char* safetensors_dtype_name(SafetensorsDtype d);  // "F32", "BF16", ...
// Parses a dtype name as spelled in headers ("F32"); nullopt when unknown.
std::optional<SafetensorsDtype> parse_safetensors_dtype(const std::string& name);
size_t safetensors_dtype_size(SafetensorsDtype d);  // bytes per element
// Whether to_float() converts this dtype (F32, F16, BF16, F64).
bool safetensors_dtype_is_float(SafetensorsDtype d);

struct SafetensorsTensorInfo {
    std::string name;
    SafetensorsDtype dtype = SafetensorsDtype::kF32;
    std::vector<int64_t> shape;  // row-major; empty for a scalar
    uint64_t begin = 0;          // byte offsets relative to the data section
    uint64_t end = 0;
    uint64_t n_bytes() const { return end - begin; }
    int64_t n_elements() const;  // product(shape); 1 for a scalar
};

class SafetensorsFile {
public:
    // Maps and validates `path`. IoError when it cannot be opened/mapped;
    // FormatError naming the file (and the tensor) for any malformed header.
    static std::shared_ptr<SafetensorsFile> open(const std::string& path);
    ~SafetensorsFile();
    SafetensorsFile(const SafetensorsFile&) = delete;
    SafetensorsFile& operator=(const SafetensorsFile&) = delete;

    const std::string& path() const { return path_; }
    uint64_t header_size() const { return header_size_; }       // N
    uint64_t data_offset() const { return 8 + header_size_; }   // file offset of the data section
    uint64_t file_size() const { return size_; }

    // Tensors in file order (by data offset; ties, i.e. empty tensors, by name).
    const std::vector<SafetensorsTensorInfo>& tensors() const { return tensors_; }
    std::vector<std::string> names() const;
    const SafetensorsTensorInfo* find(const std::string& name) const;  // nullptr if absent
    const SafetensorsTensorInfo& tensor(const std::string& name) const;  // FormatError if absent
    bool contains(const std::string& name) const { return find(name) != nullptr; }

    // Raw little-endian bytes inside the mapping, valid while this object lives.
    // Not necessarily aligned to the element size (headers of any length are
    // legal), so read through memcpy.
    const uint8_t* data(const SafetensorsTensorInfo& t) const;
    const uint8_t* data(const std::string& name) const { return data(tensor(name)); }

    // Converts a floating-point tensor (F32, F16, BF16, F64) to fp32, row-major.
    // Other dtypes: FormatError "tensor 'x' has dtype I64; expected a
    // floating-point weight". read_float_into writes n_elements() floats.
    std::vector<float> to_float(const std::string& name) const;
    void read_float_into(const std::string& name, float* out) const;
    std::vector<float> to_float(const SafetensorsTensorInfo& t) const;
    void read_float_into(const SafetensorsTensorInfo& t, float* out) const;

    // The header's "__metadata__" (string to string).
    const std::map<std::string, std::string>& metadata() const { return metadata_; }

private:
    SafetensorsFile() = default;
    void parse();
    std::string path_;
    const uint8_t* base_ = nullptr;
    size_t size_ = 0;
    uint64_t header_size_ = 0;
    std::vector<SafetensorsTensorInfo> tensors_;
    std::map<std::string, size_t> index_;
    std::map<std::string, std::string> metadata_;
};

// A Hugging Face model's weights: one model.safetensors, or shards listed by
// model.safetensors.index.json ({"metadata": {...}, "weight_map": {tensor: shard}}).
class SafetensorsModel {
public:
    // `path` is a model folder, a .safetensors file or a .safetensors.index.json.
    // In a folder, model.safetensors wins over the index (as in transformers).
    // Each shard is opened once. Errors: IoError when neither file exists or the
    // index names a missing shard (naming the index and the shard); FormatError
    // when a tensor of the index is absent from its shard, a tensor lives in two
    // shards, or the index is malformed.
    static std::shared_ptr<SafetensorsModel> open(const std::string& path);

    const std::string& path() const { return path_; }
    const std::string& index_path() const { return index_path_; }  // "" for a single file
    const std::vector<std::shared_ptr<SafetensorsFile>>& shards() const { return shards_; }
    // The index's "metadata" (values that are not strings as their JSON text,
    // e.g. total_size "1234"); for a single file, its __metadata__.
    const std::map<std::string, std::string>& metadata() const { return metadata_; }

    // Every tensor, shard by shard (shards in index order of first mention),
    // file order within a shard.
    const std::vector<std::string>& names() const { return names_; }
    size_t size() const { return names_.size(); }
    bool contains(const std::string& name) const { return where_.count(name) != 0; }
    // The file holding a tensor; FormatError naming the model when absent.
    const SafetensorsFile& file_of(const std::string& name) const;
    const SafetensorsTensorInfo& tensor(const std::string& name) const;
    const SafetensorsTensorInfo* find(const std::string& name) const;
    const uint8_t* data(const std::string& name) const;
    std::vector<float> to_float(const std::string& name) const;
    void read_float_into(const std::string& name, float* out) const;

private:
    std::string path_;
    std::string index_path_;
    std::vector<std::shared_ptr<SafetensorsFile>> shards_;
    std::map<std::string, std::string> metadata_;
    std::vector<std::string> names_;
    std::map<std::string, size_t> where_;  // tensor -> index into shards_
};

// Writes safetensors files the reference implementation reads back: JSON header
// with "__metadata__" first (omitted when empty), tensors sorted by dtype size
// (largest first, so every tensor is aligned to its element size) then name,
// header padded with spaces to a multiple of 8. Written to `path.tmp-<pid>`,
// fsynced and renamed, so a failed write never leaves a partial file.
class SafetensorsWriter {
public:
    void set_metadata(const std::string& key, const std::string& value);
    // Stores fp32 row-major `data` of `shape` as F32, F16 or BF16 (copied now).
    void add_tensor(const std::string& name, const std::vector<int64_t>& shape, const float* data,
                    SafetensorsDtype stored = SafetensorsDtype::kF32);
    // Stores bytes as they are (any dtype, e.g. I64 position ids); `n_bytes`
    // must equal product(shape) * dtype size.
    void add_raw(const std::string& name, SafetensorsDtype dtype, const std::vector<int64_t>& shape,
                 const void* bytes, size_t n_bytes);
    size_t size() const { return tensors_.size(); }
    void write(const std::string& path) const;

private:
    struct PendingTensor {
        std::string name;
        SafetensorsDtype dtype;
        std::vector<int64_t> shape;
        std::vector<uint8_t> bytes;
    };
    void check_new(const std::string& name, const std::vector<int64_t>& shape, int64_t* n_elements) const;
    std::map<std::string, std::string> metadata_;
    std::vector<PendingTensor> tensors_;
};

}  // namespace memskew
