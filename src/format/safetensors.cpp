// safetensors reader: maps the file and validates the whole header up front.
//
// Files are untrusted: the header length is checked against the file size
// before the JSON is touched, every shape product is overflow-checked, and
// every tensor's byte range is proven to lie inside the data section (and to
// match its shape and dtype) before data() hands out a pointer.
#include "memskew/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <simdjson.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>

#include "memskew/error.h"
#include "memskew/file-io.h"
#include "format/json-util.h"
#include "format/mapped-file.h"
#include "memskew/gguf.h"

namespace memskew {

namespace fs = std::filesystem;

namespace {

using format::json_type_name;

struct DtypeEntry {
    SafetensorsDtype dtype;
    const char* name;
    size_t size;
};

constexpr DtypeEntry kDtypes[] = {
    {SafetensorsDtype::kBool, "BOOL", 1},         {SafetensorsDtype::kU8, "U8", 1},
    {SafetensorsDtype::kI8, "I8", 1},             {SafetensorsDtype::kF8_E5M2, "F8_E5M2", 1},
    {SafetensorsDtype::kF8_E4M3, "F8_E4M3", 1},   {SafetensorsDtype::kF8_E8M0, "F8_E8M0", 1},
    {SafetensorsDtype::kI16, "I16", 2},           {SafetensorsDtype::kU16, "U16", 2},
    {SafetensorsDtype::kF16, "F16", 2},           {SafetensorsDtype::kBF16, "BF16", 2},
    {SafetensorsDtype::kI32, "I32", 4},           {SafetensorsDtype::kU32, "U32", 4},
    {SafetensorsDtype::kF32, "F32", 4},           {SafetensorsDtype::kF64, "F64", 8},
    {SafetensorsDtype::kI64, "I64", 8},           {SafetensorsDtype::kU64, "U64", 8},
};

std::string known_dtype_list() {
    std::string s;
    for (const DtypeEntry& e : kDtypes) {
        if (!s.empty()) s += ", ";
        s += e.name;
    }
    return s;
}

// By value: iterating `e.get_object().value_unsafe()` directly would range
// over a member of a destroyed temporary.
simdjson::dom::object object_of(const simdjson::dom::element& e) { return e.get_object().value_unsafe(); }
simdjson::dom::array array_of(const simdjson::dom::element& e) { return e.get_array().value_unsafe(); }

// A non-negative integer that fits in uint64 (negative or fractional: nullopt).
std::optional<uint64_t> as_count(const simdjson::dom::element& e) {
    if (e.type() == simdjson::dom::element_type::UINT64) return e.get_uint64().value_unsafe();
    if (e.type() == simdjson::dom::element_type::INT64) {
        const int64_t v = e.get_int64().value_unsafe();
        if (v >= 0) return static_cast<uint64_t>(v);
    }
    return std::nullopt;
}

// Shows the first bytes of a file the way a user can recognise them.
std::string show_magic(const uint8_t* p, size_t n) {
    std::string shown;
    for (size_t k = 0; k < n; ++k) {
        const char ch = static_cast<char>(p[k]);
        shown += (ch >= 0x20 && ch < 0x7f) ? std::string(1, ch) : fmt::format("\\x{:02x}", p[k]);
    }
    return shown;
}

// A hint for files that are some other format in disguise.
std::string format_hint(const uint8_t* p, size_t n) {
    if (n >= 4 && std::memcmp(p, "GGUF", 4) == 0) {
        return "this is a GGUF file; open it as GGUF, not safetensors";
    }
    if (n >= 2 && p[0] == 'P' && p[1] == 'K') {
        return "this looks like a PyTorch pickle (zip) checkpoint such as pytorch_model.bin; "
               "memskew reads safetensors — convert it with transformers' save_pretrained(safe_serialization=True)";
    }
    if (n >= 1 && (p[0] == '{' || p[0] == '<')) {
        return "this looks like a text file (JSON/HTML), e.g. a Git LFS pointer or an error page "
               "saved instead of the weights";
    }
    return "the file may be truncated or not a safetensors file";
}

std::string read_small_file(const std::string& path) { return read_text_file(path); }

// Rejects shard names that would leave the model folder (a hostile index must
// not make memskew open arbitrary files).
void check_shard_name(const std::string& shard, const std::string& tensor) {
    const fs::path p(shard);
    bool bad = shard.empty() || p.is_absolute();
    for (const auto& part : p) bad = bad || part == "..";
    if (bad) {
        throw FormatError(fmt::format("weight_map: tensor '{}' names shard '{}'; expected a file name inside "
                                      "the model folder",
                                      tensor, shard));
    }
}

void convert_to_float(const SafetensorsTensorInfo& t, const uint8_t* src, float* out) {
    const int64_t n = t.n_elements();
    switch (t.dtype) {
        // dequantize_row reads through memcpy-style loads, so unaligned
        // tensors (odd header lengths) are fine.
        case SafetensorsDtype::kF32:
            dequantize_row(static_cast<uint32_t>(GgmlType::kF32), src, out, n);
            return;
        case SafetensorsDtype::kF16:
            dequantize_row(static_cast<uint32_t>(GgmlType::kF16), src, out, n);
            return;
        case SafetensorsDtype::kBF16:
            dequantize_row(static_cast<uint32_t>(GgmlType::kBF16), src, out, n);
            return;
        case SafetensorsDtype::kF64:
            for (int64_t i = 0; i < n; ++i) {
                double v;
                std::memcpy(&v, src + 8 * i, 8);
                out[i] = static_cast<float>(v);
            }
            return;
        default:
            throw FormatError(fmt::format("tensor '{}' has dtype {}; expected a floating-point weight", t.name,
                                          safetensors_dtype_name(t.dtype)),
                              "memskew converts F32, F16, BF16 and F64 tensors to float");
    }
}

}  // namespace

// --- dtypes -------------------------------------------------------------------

const char* safetensors_dtype_name(SafetensorsDtype d) {
    for (const DtypeEntry& e : kDtypes) {
        if (e.dtype == d) return e.name;
    }
    return "?";
}

std::optional<SafetensorsDtype> parse_safetensors_dtype(const std::string& name) {
    for (const DtypeEntry& e : kDtypes) {
        if (name == e.name) return e.dtype;
    }
    return std::nullopt;
}

size_t safetensors_dtype_size(SafetensorsDtype d) {
    for (const DtypeEntry& e : kDtypes) {
        if (e.dtype == d) return e.size;
    }
    return 0;
}

bool safetensors_dtype_is_float(SafetensorsDtype d) {
    return d == SafetensorsDtype::kF32 || d == SafetensorsDtype::kF16 || d == SafetensorsDtype::kBF16 ||
           d == SafetensorsDtype::kF64;
}

int64_t SafetensorsTensorInfo::n_elements() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;  // open() proved the product fits
    return n;
}

// --- SafetensorsFile ----------------------------------------------------------

std::shared_ptr<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
    const FileMapping m = map_file_readonly(path, {".safetensors", "a safetensors file", "open a model folder with SafetensorsModel, or pass the .safetensors file itself"});
    std::shared_ptr<SafetensorsFile> file(new SafetensorsFile());
    file->path_ = path;
    file->base_ = m.data;
    file->size_ = m.size;

    with_context(fmt::format("error loading {}", path), [&] { file->parse(); });
    return file;
}

SafetensorsFile::~SafetensorsFile() { unmap_file({base_, size_}); }

void SafetensorsFile::parse() {
    if (size_ < 8) {
        throw FormatError(fmt::format("file is only {} bytes; a safetensors file starts with an 8-byte "
                                      "header length",
                                      size_),
                          format_hint(base_, size_));
    }
    uint64_t n = 0;
    for (int k = 7; k >= 0; --k) n = (n << 8) | base_[k];  // little-endian on any host
    if (n > size_ - 8) {
        throw FormatError(fmt::format("safetensors header length {} exceeds file size {} (file starts with '{}')",
                                      n, size_, show_magic(base_, std::min<size_t>(size_, 8))),
                          format_hint(base_, size_));
    }
    if (n < 2) {
        throw FormatError(fmt::format("safetensors header length {} is too small for a JSON object", n),
                          format_hint(base_, size_));
    }
    header_size_ = n;
    const uint8_t* header = base_ + 8;
    if (header[0] != '{') {
        throw FormatError(fmt::format("safetensors header does not start with '{{' (found '{}')",
                                      show_magic(header, std::min<uint64_t>(n, 8))),
                          format_hint(base_, size_));
    }
    const uint64_t data_size = size_ - 8 - n;

    // DOM parser: dispatches to the best kernel at runtime. parse() copies the
    // bytes into a padded buffer, so it never reads past the mapping.
    simdjson::dom::parser parser;
    simdjson::dom::element root;
    if (auto err = parser.parse(header, static_cast<size_t>(n)).get(root); err) {
        throw FormatError(fmt::format("safetensors header is not valid JSON: {}", simdjson::error_message(err)),
                          "the file may be truncated or corrupted");
    }
    if (root.type() != simdjson::dom::element_type::OBJECT) {
        throw FormatError(fmt::format("safetensors header is {}, expected a JSON object", json_type_name(root)));
    }

    bool seen_metadata = false;
    for (const auto field : object_of(root)) {
        const std::string name(field.key);
        const simdjson::dom::element& v = field.value;
        if (name == "__metadata__") {
            if (seen_metadata) throw FormatError("'__metadata__' appears twice in the header");
            seen_metadata = true;
            if (v.is_null()) continue;
            if (v.type() != simdjson::dom::element_type::OBJECT) {
                throw FormatError(fmt::format("'__metadata__' is {}, expected an object of strings",
                                              json_type_name(v)));
            }
            for (const auto kv : object_of(v)) {
                if (kv.value.type() != simdjson::dom::element_type::STRING) {
                    throw FormatError(fmt::format("'__metadata__' value of key '{}' is {}, expected a string",
                                                  kv.key, json_type_name(kv.value)));
                }
                metadata_[std::string(kv.key)] = std::string(kv.value.get_string().value_unsafe());
            }
            continue;
        }
        if (index_.count(name) != 0) {
            throw FormatError(fmt::format("tensor '{}' appears twice in the header", name));
        }
        if (v.type() != simdjson::dom::element_type::OBJECT) {
            throw FormatError(fmt::format("tensor '{}' is {}, expected an object with dtype, shape and "
                                          "data_offsets",
                                          name, json_type_name(v)));
        }
        const auto obj = v.get_object().value_unsafe();
        auto field_of = [&](const char* key) {
            simdjson::dom::element e;
            if (obj[key].get(e) != simdjson::SUCCESS) {
                throw FormatError(fmt::format("tensor '{}' has no '{}'", name, key),
                                  "each tensor needs dtype, shape and data_offsets");
            }
            return e;
        };

        SafetensorsTensorInfo t;
        t.name = name;
        const simdjson::dom::element dtype = field_of("dtype");
        if (dtype.type() != simdjson::dom::element_type::STRING) {
            throw FormatError(fmt::format("tensor '{}': dtype is {}, expected a string such as \"F32\"", name,
                                          json_type_name(dtype)));
        }
        const std::string dtype_name(dtype.get_string().value_unsafe());
        const auto parsed = parse_safetensors_dtype(dtype_name);
        if (!parsed) {
            throw FormatError(fmt::format("tensor '{}' has unknown dtype '{}'", name, dtype_name),
                              fmt::format("memskew knows {}", known_dtype_list()));
        }
        t.dtype = *parsed;

        const simdjson::dom::element shape = field_of("shape");
        if (shape.type() != simdjson::dom::element_type::ARRAY) {
            throw FormatError(fmt::format("tensor '{}': shape is {}, expected a list of integers", name,
                                          json_type_name(shape)));
        }
        uint64_t n_elements = 1;
        for (const auto d : array_of(shape)) {
            const auto dim = as_count(d);
            if (!dim || *dim > static_cast<uint64_t>(INT64_MAX)) {
                throw FormatError(fmt::format("tensor '{}': shape holds {}, expected non-negative integers", name,
                                              json_type_name(d)));
            }
            if (__builtin_mul_overflow(n_elements, *dim, &n_elements) || n_elements > static_cast<uint64_t>(INT64_MAX)) {
                throw FormatError(fmt::format("tensor '{}': shape {} has too many elements", name,
                                              simdjson::to_string(shape)));
            }
            t.shape.push_back(static_cast<int64_t>(*dim));
        }

        const simdjson::dom::element offsets = field_of("data_offsets");
        std::vector<uint64_t> off;
        if (offsets.type() == simdjson::dom::element_type::ARRAY) {
            for (const auto o : array_of(offsets)) {
                const auto x = as_count(o);
                if (!x) {
                    off.clear();
                    break;
                }
                off.push_back(*x);
            }
        }
        if (off.size() != 2) {
            throw FormatError(fmt::format("tensor '{}': data_offsets is {}, expected [begin, end] with two "
                                          "non-negative integers",
                                          name, simdjson::to_string(offsets)));
        }
        t.begin = off[0];
        t.end = off[1];
        if (t.begin > t.end) {
            throw FormatError(fmt::format("tensor '{}' has data_offsets [{}, {}]: begin > end", name, t.begin, t.end));
        }
        if (t.end > data_size) {
            throw FormatError(fmt::format("tensor '{}' data_offsets [{}, {}] exceed the data section ({} bytes)",
                                          name, t.begin, t.end, data_size),
                              "the file may be truncated (an interrupted download?)");
        }
        uint64_t need = 0;
        if (__builtin_mul_overflow(n_elements, static_cast<uint64_t>(safetensors_dtype_size(t.dtype)), &need) ||
            need != t.end - t.begin) {
            throw FormatError(fmt::format("tensor '{}' spans {} bytes, but shape {} of dtype {} needs {} bytes",
                                          name, t.end - t.begin, fmt::format("[{}]", fmt::join(t.shape, ", ")),
                                          dtype_name, n_elements * safetensors_dtype_size(t.dtype)));
        }
        index_[name] = tensors_.size();
        tensors_.push_back(std::move(t));
    }

    // File order; proves that no two tensors share a byte.
    std::sort(tensors_.begin(), tensors_.end(), [](const SafetensorsTensorInfo& a, const SafetensorsTensorInfo& b) {
        return a.begin != b.begin ? a.begin < b.begin : (a.end != b.end ? a.end < b.end : a.name < b.name);
    });
    const SafetensorsTensorInfo* prev = nullptr;
    for (size_t k = 0; k < tensors_.size(); ++k) {
        const SafetensorsTensorInfo& t = tensors_[k];
        index_[t.name] = k;
        if (t.begin == t.end) continue;  // empty tensors occupy no bytes
        if (prev != nullptr && t.begin < prev->end) {
            throw FormatError(fmt::format("tensors '{}' [{}, {}] and '{}' [{}, {}] overlap", prev->name, prev->begin,
                                          prev->end, t.name, t.begin, t.end),
                              "every tensor needs its own byte range in the data section");
        }
        prev = &t;
    }
}

std::vector<std::string> SafetensorsFile::names() const {
    std::vector<std::string> out;
    out.reserve(tensors_.size());
    for (const auto& t : tensors_) out.push_back(t.name);
    return out;
}

const SafetensorsTensorInfo* SafetensorsFile::find(const std::string& name) const {
    const auto it = index_.find(name);
    return it == index_.end() ? nullptr : &tensors_[it->second];
}

const SafetensorsTensorInfo& SafetensorsFile::tensor(const std::string& name) const {
    const SafetensorsTensorInfo* t = find(name);
    if (t == nullptr) {
        throw FormatError(fmt::format("tensor '{}' not found in {} ({} tensors)", name, path_, tensors_.size()),
                          "the checkpoint may be for a different architecture");
    }
    return *t;
}

const uint8_t* SafetensorsFile::data(const SafetensorsTensorInfo& t) const {
    return base_ + 8 + header_size_ + t.begin;
}

std::vector<float> SafetensorsFile::to_float(const SafetensorsTensorInfo& t) const {
    if (!safetensors_dtype_is_float(t.dtype)) {
        read_float_into(t, nullptr);  // throws the dtype error before allocating
    }
    std::vector<float> out(static_cast<size_t>(t.n_elements()));
    read_float_into(t, out.data());
    return out;
}

void SafetensorsFile::read_float_into(const SafetensorsTensorInfo& t, float* out) const {
    with_context(fmt::format("error reading {}", path_), [&] { convert_to_float(t, data(t), out); });
}

std::vector<float> SafetensorsFile::to_float(const std::string& name) const { return to_float(tensor(name)); }

void SafetensorsFile::read_float_into(const std::string& name, float* out) const {
    read_float_into(tensor(name), out);
}

// --- SafetensorsModel ---------------------------------------------------------

std::shared_ptr<SafetensorsModel> SafetensorsModel::open(const std::string& path) {
    auto model = std::make_shared<SafetensorsModel>();
    model->path_ = path;
    std::error_code ec;
    std::string single;
    std::string index;
    if (fs::is_directory(path, ec)) {
        const fs::path dir(path);
        if (fs::exists(dir / "model.safetensors", ec)) {
            single = (dir / "model.safetensors").string();
        } else if (fs::exists(dir / "model.safetensors.index.json", ec)) {
            index = (dir / "model.safetensors.index.json").string();
        } else {
            std::string hint = "expected model.safetensors or model.safetensors.index.json";
            if (fs::exists(dir / "pytorch_model.bin", ec) || fs::exists(dir / "pytorch_model.bin.index.json", ec)) {
                hint = "the folder holds PyTorch pickle weights (pytorch_model.bin); re-save them with "
                       "save_pretrained(safe_serialization=True)";
            } else if (fs::exists(dir / "adapter_model.safetensors", ec)) {
                hint = "the folder holds a LoRA adapter (adapter_model.safetensors), not a full model; "
                       "pass it as an adapter together with its base model";
            }
            throw IoError(fmt::format("no model.safetensors or model.safetensors.index.json in '{}'", path), hint);
        }
    } else if (path.size() >= 5 && path.compare(path.size() - 5, 5, ".json") == 0) {
        index = path;
    } else {
        single = path;
    }

    if (!single.empty()) {
        model->shards_.push_back(SafetensorsFile::open(single));
        model->metadata_ = model->shards_[0]->metadata();
        for (const auto& t : model->shards_[0]->tensors()) {
            model->where_[t.name] = 0;
            model->names_.push_back(t.name);
        }
        return model;
    }

    model->index_path_ = index;
    const std::string text = read_small_file(index);
    const fs::path folder = fs::path(index).parent_path();
    // (shard name, tensors the index assigns to it), in order of first mention.
    std::vector<std::pair<std::string, std::vector<std::string>>> plan;
    with_context(fmt::format("error loading {}", index), [&] {
        simdjson::dom::parser parser;
        simdjson::dom::element root;
        if (auto err = parser.parse(text).get(root); err) {
            throw FormatError(fmt::format("not valid JSON: {}", simdjson::error_message(err)));
        }
        if (root.type() != simdjson::dom::element_type::OBJECT) {
            throw FormatError(fmt::format("the index is {}, expected an object with \"weight_map\"",
                                          json_type_name(root)));
        }
        simdjson::dom::element meta;
        if (root["metadata"].get(meta) == simdjson::SUCCESS && meta.type() == simdjson::dom::element_type::OBJECT) {
            for (const auto kv : object_of(meta)) {
                model->metadata_[std::string(kv.key)] = kv.value.type() == simdjson::dom::element_type::STRING
                                                            ? std::string(kv.value.get_string().value_unsafe())
                                                            : simdjson::minify(kv.value);
            }
        }
        simdjson::dom::element map;
        if (root["weight_map"].get(map) != simdjson::SUCCESS) {
            throw FormatError("missing \"weight_map\"", "a sharded model index maps each tensor to its shard file");
        }
        if (map.type() != simdjson::dom::element_type::OBJECT) {
            throw FormatError(fmt::format("\"weight_map\" is {}, expected an object", json_type_name(map)));
        }
        std::map<std::string, size_t> plan_index;
        std::map<std::string, std::string> seen;
        for (const auto kv : object_of(map)) {
            const std::string tensor(kv.key);
            if (kv.value.type() != simdjson::dom::element_type::STRING) {
                throw FormatError(fmt::format("weight_map: tensor '{}' maps to {}, expected a shard file name",
                                              tensor, json_type_name(kv.value)));
            }
            const std::string shard(kv.value.get_string().value_unsafe());
            check_shard_name(shard, tensor);
            const auto [it, inserted] = seen.emplace(tensor, shard);
            if (!inserted) {
                throw FormatError(fmt::format("weight_map lists tensor '{}' twice (shards '{}' and '{}')", tensor,
                                              it->second, shard));
            }
            auto [pit, fresh] = plan_index.emplace(shard, plan.size());
            if (fresh) plan.emplace_back(shard, std::vector<std::string>{});
            plan[pit->second].second.push_back(tensor);
        }
        if (plan.empty()) throw FormatError("\"weight_map\" is empty", "the index lists no tensors");
    });

    for (const auto& [shard, listed] : plan) {
        const std::string shard_path = (folder / shard).string();
        if (!fs::exists(shard_path, ec)) {
            throw IoError(fmt::format("{} names shard '{}', which does not exist ({})", index, shard, shard_path),
                          "download every shard listed in the index");
        }
        const size_t k = model->shards_.size();
        model->shards_.push_back(SafetensorsFile::open(shard_path));
        const SafetensorsFile& file = *model->shards_.back();
        for (const std::string& name : listed) {
            if (!file.contains(name)) {
                throw FormatError(fmt::format("error loading {}: tensor '{}' is listed in the index for shard '{}' "
                                              "but absent from it",
                                              index, name, shard),
                                  "the index and the shards come from different checkpoints");
            }
        }
        // Every tensor a shard holds counts (transformers loads whole shards),
        // so a tensor stored twice is ambiguous even if the index lists one.
        for (const auto& t : file.tensors()) {
            const auto [it, inserted] = model->where_.emplace(t.name, k);
            if (!inserted) {
                throw FormatError(fmt::format("error loading {}: tensor '{}' is stored in two shards, '{}' and '{}'",
                                              index, t.name, model->shards_[it->second]->path(), file.path()),
                                  "the shards come from different checkpoints");
            }
            model->names_.push_back(t.name);
        }
    }
    return model;
}

const SafetensorsTensorInfo* SafetensorsModel::find(const std::string& name) const {
    const auto it = where_.find(name);
    return it == where_.end() ? nullptr : shards_[it->second]->find(name);
}

const SafetensorsFile& SafetensorsModel::file_of(const std::string& name) const {
    const auto it = where_.find(name);
    if (it == where_.end()) {
        throw FormatError(fmt::format("tensor '{}' not found in {} ({} tensors in {} file(s))", name, path_,
                                      names_.size(), shards_.size()),
                          "the checkpoint may be for a different architecture");
    }
    return *shards_[it->second];
}

const SafetensorsTensorInfo& SafetensorsModel::tensor(const std::string& name) const {
    return file_of(name).tensor(name);
}

const uint8_t* SafetensorsModel::data(const std::string& name) const { return file_of(name).data(name); }

std::vector<float> SafetensorsModel::to_float(const std::string& name) const { return file_of(name).to_float(name); }

void SafetensorsModel::read_float_into(const std::string& name, float* out) const {
    file_of(name).read_float_into(name, out);
}

}  // namespace memskew
