// GGUF v2/v3 reader: maps the file, parses and validates everything up front.
//
// Files are untrusted: every length and count is checked against the bytes
// left before anything is allocated, so a hostile count (2^60) fails with a
// message instead of an allocation, and every tensor's data range is proven
// to lie inside the file before data() hands out a pointer.
#include "memskew/gguf.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>

#include "memskew/error.h"
#include "format/mapped-file.h"

namespace memskew {

namespace {

constexpr uint32_t kGgufMagic = 0x46554747;  // "GGUF" read as little-endian uint32
constexpr uint64_t kDefaultAlignment = 32;
constexpr uint32_t kMaxDims = 4;
// Arrays of arrays recurse; a hostile file could nest deep enough to blow the
// stack. Real files nest at most once or twice.
constexpr int kMaxArrayDepth = 16;

// Smallest encoded size of a value of each type; used to bound counts by the
// bytes that are left before allocating anything.
uint64_t min_encoded_size(GgufType t) {
    switch (t) {
        case GgufType::kUint8:
        case GgufType::kInt8:
        case GgufType::kBool:
            return 1;
        case GgufType::kUint16:
        case GgufType::kInt16:
            return 2;
        case GgufType::kUint32:
        case GgufType::kInt32:
        case GgufType::kFloat32:
            return 4;
        case GgufType::kUint64:
        case GgufType::kInt64:
        case GgufType::kFloat64:
        case GgufType::kString:  // uint64 length
            return 8;
        case GgufType::kArray:  // uint32 type + uint64 count
            return 12;
    }
    return 0;
}

bool is_valid_value_type(uint32_t t) { return t <= static_cast<uint32_t>(GgufType::kFloat64); }

std::string type_description(const GgufValue& v) {
    if (v.type == GgufType::kArray) {
        return fmt::format("array of {}", gguf_type_name(v.array_type));
    }
    return gguf_type_name(v.type);
}

// Bounds-checked little-endian reader over the mapped bytes. `context_`
// names the item being parsed ("key 'x'", "tensor info 3 'y'") so errors say
// where they happened without building strings on the hot path.
class Cursor {
public:
    Cursor(const uint8_t* base, size_t size) : base_(base), size_(size) {}

    size_t pos() const { return pos_; }
    uint64_t remaining() const { return size_ - pos_; }
    void set_context(std::string context) { context_ = std::move(context); }

    void need(uint64_t n, const char* what) const {
        if (n > remaining()) {
            throw FormatError(
                fmt::format("truncated: expected {} more bytes while reading {}{}{} at offset {} "
                            "(file size {})",
                            n, what, context_.empty() ? "" : " of ", context_, pos_, size_),
                "the file is incomplete (interrupted download or copy?) or corrupt");
        }
    }

    template <typename T>
    T read(const char* what) {
        need(sizeof(T), what);
        T v;
        std::memcpy(&v, base_ + pos_, sizeof(T));
        pos_ += sizeof(T);
        return v;
    }

    const uint8_t* take(uint64_t n, const char* what) {
        need(n, what);
        const uint8_t* p = base_ + pos_;
        pos_ += n;
        return p;
    }

    std::string read_string(const char* what) {
        const uint64_t len = read<uint64_t>(what);
        const uint8_t* p = take(len, what);
        return std::string(reinterpret_cast<const char*>(p), len);
    }

    // A count of items each taking at least `min_size` bytes must fit in what
    // is left; checked before any allocation sized by the count.
    void check_count(uint64_t count, uint64_t min_size, const char* what, size_t count_pos) const {
        if (min_size != 0 && count > remaining() / min_size) {
            throw FormatError(
                fmt::format("truncated or corrupt: {}{}{} at offset {} is {}, but {} items of at "
                            "least {} bytes cannot fit in the {} bytes left (file size {})",
                            what, context_.empty() ? "" : " of ", context_, count_pos, count, count,
                            min_size, remaining(), size_),
                "the file is incomplete or corrupt");
        }
    }

private:
    const uint8_t* base_;
    size_t size_;
    size_t pos_ = 0;
    std::string context_;
};

void read_scalar(Cursor& c, GgufType type, GgufValue& v) {
    static constexpr const char* kWhat = "value";
    switch (type) {
        case GgufType::kUint8: v.u = c.read<uint8_t>(kWhat); break;
        case GgufType::kInt8: v.i = c.read<int8_t>(kWhat); break;
        case GgufType::kUint16: v.u = c.read<uint16_t>(kWhat); break;
        case GgufType::kInt16: v.i = c.read<int16_t>(kWhat); break;
        case GgufType::kUint32: v.u = c.read<uint32_t>(kWhat); break;
        case GgufType::kInt32: v.i = c.read<int32_t>(kWhat); break;
        case GgufType::kUint64: v.u = c.read<uint64_t>(kWhat); break;
        case GgufType::kInt64: v.i = c.read<int64_t>(kWhat); break;
        case GgufType::kFloat32: v.f = c.read<float>(kWhat); break;
        case GgufType::kFloat64: v.f = c.read<double>(kWhat); break;
        case GgufType::kBool: v.u = c.read<uint8_t>(kWhat) != 0 ? 1 : 0; break;
        case GgufType::kString: v.s = c.read_string("string"); break;
        case GgufType::kArray: break;  // handled by read_value
    }
}

void read_value(Cursor& c, GgufType type, GgufValue& v, int depth) {
    v.type = type;
    if (type != GgufType::kArray) {
        read_scalar(c, type, v);
        return;
    }
    if (depth >= kMaxArrayDepth) {
        throw FormatError(fmt::format("arrays nested deeper than {} levels at offset {}",
                                      kMaxArrayDepth, c.pos()));
    }
    const size_t type_pos = c.pos();
    const uint32_t elem_type = c.read<uint32_t>("array element type");
    if (!is_valid_value_type(elem_type)) {
        throw FormatError(fmt::format("unknown array element type {} at offset {} (valid: 0 to 12)",
                                      elem_type, type_pos));
    }
    v.array_type = static_cast<GgufType>(elem_type);
    const size_t count_pos = c.pos();
    const uint64_t count = c.read<uint64_t>("array length");
    c.check_count(count, min_encoded_size(v.array_type), "array length", count_pos);
    v.array.resize(count);
    for (GgufValue& e : v.array) read_value(c, v.array_type, e, depth + 1);
}

}  // namespace

const char* gguf_type_name(GgufType type) {
    switch (type) {
        case GgufType::kUint8: return "uint8";
        case GgufType::kInt8: return "int8";
        case GgufType::kUint16: return "uint16";
        case GgufType::kInt16: return "int16";
        case GgufType::kUint32: return "uint32";
        case GgufType::kInt32: return "int32";
        case GgufType::kFloat32: return "float32";
        case GgufType::kBool: return "bool";
        case GgufType::kString: return "string";
        case GgufType::kArray: return "array";
        case GgufType::kUint64: return "uint64";
        case GgufType::kInt64: return "int64";
        case GgufType::kFloat64: return "float64";
    }
    return "unknown";
}

// --- GgufValue --------------------------------------------------------------

bool GgufValue::is_integer() const {
    switch (type) {
        case GgufType::kUint8: case GgufType::kInt8: case GgufType::kUint16:
        case GgufType::kInt16: case GgufType::kUint32: case GgufType::kInt32:
        case GgufType::kUint64: case GgufType::kInt64:
            return true;
        default:
            return false;
    }
}

bool GgufValue::is_number() const {
    return is_integer() || type == GgufType::kFloat32 || type == GgufType::kFloat64;
}

namespace {
bool is_unsigned(GgufType t) {
    return t == GgufType::kUint8 || t == GgufType::kUint16 || t == GgufType::kUint32 ||
           t == GgufType::kUint64;
}
}  // namespace

int64_t GgufValue::as_int(const std::string& what) const {
    if (!is_integer()) {
        throw FormatError(fmt::format("{} has type {}, expected an integer", what, type_description(*this)));
    }
    if (is_unsigned(type)) {
        if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
            throw FormatError(fmt::format("{} is {}, which does not fit in int64", what, u));
        }
        return static_cast<int64_t>(u);
    }
    return i;
}

double GgufValue::as_double(const std::string& what) const {
    if (type == GgufType::kFloat32 || type == GgufType::kFloat64) return f;
    if (is_integer()) return is_unsigned(type) ? static_cast<double>(u) : static_cast<double>(i);
    throw FormatError(fmt::format("{} has type {}, expected a number", what, type_description(*this)));
}

bool GgufValue::as_bool(const std::string& what) const {
    if (type != GgufType::kBool) {
        throw FormatError(fmt::format("{} has type {}, expected bool", what, type_description(*this)));
    }
    return u != 0;
}

const std::string& GgufValue::as_string(const std::string& what) const {
    if (type != GgufType::kString) {
        throw FormatError(fmt::format("{} has type {}, expected string", what, type_description(*this)));
    }
    return s;
}

std::vector<std::string> GgufValue::as_strings(const std::string& what) const {
    if (type != GgufType::kArray || array_type != GgufType::kString) {
        throw FormatError(
            fmt::format("{} has type {}, expected array of string", what, type_description(*this)));
    }
    std::vector<std::string> out;
    out.reserve(array.size());
    for (const GgufValue& e : array) out.push_back(e.s);
    return out;
}

std::vector<float> GgufValue::as_floats(const std::string& what) const {
    GgufValue probe;
    probe.type = array_type;
    if (type != GgufType::kArray || !probe.is_number()) {
        throw FormatError(
            fmt::format("{} has type {}, expected array of numbers", what, type_description(*this)));
    }
    std::vector<float> out;
    out.reserve(array.size());
    for (const GgufValue& e : array) out.push_back(static_cast<float>(e.as_double(what)));
    return out;
}

std::vector<int64_t> GgufValue::as_ints(const std::string& what) const {
    GgufValue probe;
    probe.type = array_type;
    if (type != GgufType::kArray || !probe.is_integer()) {
        throw FormatError(
            fmt::format("{} has type {}, expected array of integers", what, type_description(*this)));
    }
    std::vector<int64_t> out;
    out.reserve(array.size());
    for (const GgufValue& e : array) out.push_back(e.as_int(what));
    return out;
}

std::string GgufValue::to_display(size_t max_items) const {
    switch (type) {
        case GgufType::kString: {
            // Long strings (chat templates) are cut so one line stays one line.
            constexpr size_t kMaxChars = 60;
            std::string text = s.size() > kMaxChars ? s.substr(0, kMaxChars) + "..." : s;
            std::string out = "\"";
            for (char ch : text) {
                if (ch == '\n') out += "\\n";
                else if (ch == '"') out += "\\\"";
                else if (static_cast<unsigned char>(ch) < 0x20) out += fmt::format("\\x{:02x}", ch);
                else out += ch;
            }
            return out + "\"";
        }
        case GgufType::kBool: return u ? "true" : "false";
        case GgufType::kFloat32:
        case GgufType::kFloat64: return fmt::format("{}", f);
        case GgufType::kArray: {
            std::string out = "[";
            const size_t n = std::min(max_items, array.size());
            for (size_t k = 0; k < n; ++k) {
                if (k) out += ", ";
                out += array[k].to_display(max_items);
            }
            if (array.size() > n) out += fmt::format(", ... ({} items)", array.size());
            return out + "]";
        }
        default:
            return is_unsigned(type) ? fmt::format("{}", u) : fmt::format("{}", i);
    }
}

GgufValue GgufValue::from_string(std::string v) {
    GgufValue r;
    r.type = GgufType::kString;
    r.s = std::move(v);
    return r;
}
GgufValue GgufValue::from_uint32(uint32_t v) {
    GgufValue r;
    r.type = GgufType::kUint32;
    r.u = v;
    return r;
}
GgufValue GgufValue::from_int32(int32_t v) {
    GgufValue r;
    r.type = GgufType::kInt32;
    r.i = v;
    return r;
}
GgufValue GgufValue::from_uint64(uint64_t v) {
    GgufValue r;
    r.type = GgufType::kUint64;
    r.u = v;
    return r;
}
GgufValue GgufValue::from_float32(float v) {
    GgufValue r;
    r.type = GgufType::kFloat32;
    r.f = v;
    return r;
}
GgufValue GgufValue::from_bool(bool v) {
    GgufValue r;
    r.type = GgufType::kBool;
    r.u = v ? 1 : 0;
    return r;
}
GgufValue GgufValue::from_strings(const std::vector<std::string>& v) {
    GgufValue r;
    r.type = GgufType::kArray;
    r.array_type = GgufType::kString;
    r.array.reserve(v.size());
    for (const std::string& s : v) r.array.push_back(from_string(s));
    return r;
}
GgufValue GgufValue::from_floats(const std::vector<float>& v) {
    GgufValue r;
    r.type = GgufType::kArray;
    r.array_type = GgufType::kFloat32;
    r.array.reserve(v.size());
    for (float x : v) r.array.push_back(from_float32(x));
    return r;
}
GgufValue GgufValue::from_int32s(const std::vector<int32_t>& v) {
    GgufValue r;
    r.type = GgufType::kArray;
    r.array_type = GgufType::kInt32;
    r.array.reserve(v.size());
    for (int32_t x : v) r.array.push_back(from_int32(x));
    return r;
}

// --- GgufTensorInfo ---------------------------------------------------------

int64_t GgufTensorInfo::n_elements() const {
    int64_t n = 1;
    for (int64_t d : ne) n *= d;
    return n;
}

std::vector<int64_t> GgufTensorInfo::torch_shape() const {
    return std::vector<int64_t>(ne.rbegin(), ne.rend());
}

// --- GgufFile ---------------------------------------------------------------

std::shared_ptr<GgufFile> GgufFile::open(const std::string& path) {
    const FileMapping m = map_file_readonly(path, {".gguf", "a GGUF file", "pass the path of the .gguf file itself"});
    std::shared_ptr<GgufFile> file(new GgufFile());
    file->path_ = path;
    file->base_ = m.data;
    file->size_ = m.size;

    with_context(fmt::format("error loading {}", path), [&] { file->parse(); });
    return file;
}

GgufFile::~GgufFile() { unmap_file({base_, size_}); }

void GgufFile::parse() {
    Cursor c(base_, size_);

    // Header.
    if (size_ < 4) {
        throw FormatError(fmt::format("not a GGUF file: only {} bytes, expected at least a 24-byte header", size_));
    }
    const uint32_t magic = c.read<uint32_t>("magic");
    if (magic != kGgufMagic) {
        std::string shown;
        for (int k = 0; k < 4; ++k) {
            const char ch = static_cast<char>(base_[k]);
            shown += (ch >= 0x20 && ch < 0x7f) ? std::string(1, ch) : fmt::format("\\x{:02x}", base_[k]);
        }
        std::string hint = "memskew reads GGUF (llama.cpp) and safetensors (Hugging Face) weights";
        if (base_[0] == '{' || (size_ >= 9 && base_[8] == '{')) {
            hint = "this looks like a safetensors or JSON file; pass it as such, not as GGUF";
        } else if (base_[0] == 'P' && base_[1] == 'K') {
            hint = "this looks like a PyTorch .bin/.pt (zip) file; convert it to safetensors or GGUF";
        }
        throw FormatError(fmt::format("not a GGUF file: magic is '{}', expected 'GGUF'", shown), hint);
    }
    version_ = c.read<uint32_t>("version");
    if (version_ == 1) {
        throw FormatError("GGUF version 1 is not supported (memskew reads versions 2 and 3)",
                          "re-convert the model with a current llama.cpp (convert_hf_to_gguf.py)");
    }
    if (version_ != 2 && version_ != 3) {
        if ((version_ & 0xffff) == 0 && (version_ >> 16) != 0) {
            throw FormatError(fmt::format("GGUF version field reads {:#x}: this is a big-endian GGUF "
                                          "file, which memskew does not support", version_),
                              "convert it to little-endian with llama.cpp's gguf tools");
        }
        throw FormatError(fmt::format("unsupported GGUF version {} (memskew reads versions 2 and 3)", version_),
                          "re-convert the model with llama.cpp (convert_hf_to_gguf.py)");
    }
    const uint64_t n_tensors = c.read<uint64_t>("tensor count");
    const uint64_t n_kv = c.read<uint64_t>("metadata key count");

    // Metadata. The counts are not trusted for allocation: reserve at most what
    // the remaining bytes could hold (smallest KV: 8-byte key length + 4-byte
    // type + 1-byte value); a hostile count then fails at the first missing
    // byte with a "truncated ... key N of <count>" message.
    kv_.reserve(std::min<uint64_t>(n_kv, c.remaining() / 13));
    for (uint64_t k = 0; k < n_kv; ++k) {
        c.set_context(fmt::format("key {} of {}", k, n_kv));
        std::string key = c.read_string("key name");
        c.set_context(fmt::format("key '{}'", key));
        const size_t type_pos = c.pos();
        const uint32_t type = c.read<uint32_t>("value type");
        if (!is_valid_value_type(type)) {
            throw FormatError(fmt::format("key '{}' has unknown value type {} at offset {} (valid: 0 to 12)",
                                          key, type, type_pos));
        }
        GgufValue value;
        read_value(c, static_cast<GgufType>(type), value, 0);
        const auto [it, inserted] = kv_index_.emplace(key, kv_.size());
        if (!inserted) {
            throw FormatError(fmt::format("duplicate key '{}' (entries {} and {})", key, it->second, kv_.size()));
        }
        kv_.emplace_back(std::move(key), std::move(value));
    }

    if (const GgufValue* a = find("general.alignment")) {
        if (!a->is_integer()) {
            throw FormatError(fmt::format("key 'general.alignment' has type {}, expected uint32",
                                          type_description(*a)));
        }
        const int64_t align = a->as_int("key 'general.alignment'");
        if (align <= 0 || (align & (align - 1)) != 0 || align > (int64_t{1} << 30)) {
            throw FormatError(fmt::format("key 'general.alignment' is {}, expected a power of two "
                                          "(default 32)", align));
        }
        alignment_ = static_cast<uint64_t>(align);
    } else {
        alignment_ = kDefaultAlignment;
    }

    // Tensor infos. Smallest: name length 8 + n_dims 4 + one ne 8 + type 4 + offset 8.
    c.set_context("");
    tensors_.reserve(std::min<uint64_t>(n_tensors, c.remaining() / 32));
    for (uint64_t k = 0; k < n_tensors; ++k) {
        c.set_context(fmt::format("tensor info {} of {}", k, n_tensors));
        GgufTensorInfo t;
        t.name = c.read_string("tensor name");
        c.set_context(fmt::format("tensor '{}'", t.name));
        const uint32_t n_dims = c.read<uint32_t>("number of dimensions");
        if (n_dims == 0 || n_dims > kMaxDims) {
            throw FormatError(fmt::format("tensor '{}' has {} dimensions, expected 1 to {}", t.name, n_dims,
                                          kMaxDims));
        }
        t.ne.resize(n_dims);
        for (uint32_t d = 0; d < n_dims; ++d) {
            const uint64_t ne = c.read<uint64_t>("dimension");
            if (ne == 0 || ne > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
                throw FormatError(fmt::format("tensor '{}' has dimension ne[{}] = {}, expected at least 1 "
                                              "and below 2^63", t.name, d, ne));
            }
            t.ne[d] = static_cast<int64_t>(ne);
        }
        t.type = c.read<uint32_t>("tensor type");
        t.offset = c.read<uint64_t>("tensor data offset");

        const GgmlTypeInfo* info = ggml_type_info(t.type);
        if (info == nullptr) {
            throw FormatError(fmt::format("tensor '{}' has unknown ggml type id {}", t.name, t.type),
                              "the file may come from a newer llama.cpp than memskew knows, or be corrupt");
        }
        if (t.ne[0] % info->block_size != 0) {
            throw FormatError(fmt::format("tensor '{}' of type {} has row length ne[0] = {}, which is not a "
                                          "multiple of the block size {}",
                                          t.name, info->name, t.ne[0], info->block_size));
        }
        // n_bytes = ne[0] / block * type_size * ne[1] * ...; overflow means it
        // cannot be inside any file.
        uint64_t n_bytes = static_cast<uint64_t>(t.ne[0] / info->block_size);
        bool overflow = __builtin_mul_overflow(n_bytes, static_cast<uint64_t>(info->type_size), &n_bytes);
        uint64_t n_elems = static_cast<uint64_t>(t.ne[0]);
        for (uint32_t d = 1; d < n_dims && !overflow; ++d) {
            overflow = __builtin_mul_overflow(n_bytes, static_cast<uint64_t>(t.ne[d]), &n_bytes) ||
                       __builtin_mul_overflow(n_elems, static_cast<uint64_t>(t.ne[d]), &n_elems);
        }
        if (overflow || n_elems > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
            throw FormatError(fmt::format("tensor '{}' has shape [{}] whose size overflows", t.name,
                                          fmt::join(t.ne, ", ")));
        }
        t.n_bytes = n_bytes;
        if (t.offset % alignment_ != 0) {
            throw FormatError(fmt::format("tensor '{}' data offset {} is not a multiple of the alignment {}",
                                          t.name, t.offset, alignment_));
        }
        const auto [it, inserted] = tensor_index_.emplace(t.name, tensors_.size());
        if (!inserted) {
            throw FormatError(
                fmt::format("duplicate tensor name '{}' (tensors {} and {})", t.name, it->second, tensors_.size()));
        }
        tensors_.push_back(std::move(t));
    }
    c.set_context("");

    // Data section: starts at the next multiple of the alignment.
    const uint64_t end_of_infos = c.pos();
    data_offset_ = (end_of_infos + alignment_ - 1) / alignment_ * alignment_;
    for (const GgufTensorInfo& t : tensors_) {
        const uint64_t avail = data_offset_ <= size_ ? size_ - data_offset_ : 0;
        if (t.offset > avail || t.n_bytes > avail - t.offset) {
            throw FormatError(fmt::format("tensor '{}' data [offset {}, {} bytes] extends past end of file "
                                          "(size {})",
                                          t.name, data_offset_ + t.offset, t.n_bytes, size_),
                              "the file is incomplete (interrupted download?) or corrupt");
        }
    }

    // No two tensors may share bytes: sort by offset, compare neighbours.
    std::vector<size_t> order(tensors_.size());
    for (size_t k = 0; k < order.size(); ++k) order[k] = k;
    std::sort(order.begin(), order.end(),
              [&](size_t a, size_t b) { return tensors_[a].offset < tensors_[b].offset; });
    for (size_t k = 1; k < order.size(); ++k) {
        const GgufTensorInfo& a = tensors_[order[k - 1]];
        const GgufTensorInfo& b = tensors_[order[k]];
        if (a.offset + a.n_bytes > b.offset) {
            throw FormatError(fmt::format("tensors '{}' [offset {}, {} bytes] and '{}' [offset {}, {} bytes] "
                                          "overlap",
                                          a.name, data_offset_ + a.offset, a.n_bytes, b.name,
                                          data_offset_ + b.offset, b.n_bytes));
        }
    }
}

const GgufValue* GgufFile::find(const std::string& key) const {
    auto it = kv_index_.find(key);
    return it == kv_index_.end() ? nullptr : &kv_[it->second].second;
}

const GgufValue& GgufFile::get(const std::string& key) const {
    if (const GgufValue* v = find(key)) return *v;
    throw FormatError(fmt::format("error loading {}: missing key '{}'", path_, key));
}

namespace {
template <typename T, typename Fn>
T get_with_fallback(const GgufFile& file, const std::string& key, const std::optional<T>& fallback, Fn&& convert) {
    const GgufValue* v = file.find(key);
    if (v == nullptr) {
        if (fallback) return *fallback;
        throw FormatError(fmt::format("error loading {}: missing key '{}'", file.path(), key));
    }
    return with_context(fmt::format("error loading {}", file.path()),
                        [&] { return convert(*v, fmt::format("key '{}'", key)); });
}
}  // namespace

int64_t GgufFile::get_int(const std::string& key, std::optional<int64_t> fallback) const {
    return get_with_fallback<int64_t>(*this, key, fallback,
                                      [](const GgufValue& v, const std::string& w) { return v.as_int(w); });
}

double GgufFile::get_double(const std::string& key, std::optional<double> fallback) const {
    return get_with_fallback<double>(*this, key, fallback,
                                     [](const GgufValue& v, const std::string& w) { return v.as_double(w); });
}

std::string GgufFile::get_string(const std::string& key, std::optional<std::string> fallback) const {
    return get_with_fallback<std::string>(
        *this, key, fallback, [](const GgufValue& v, const std::string& w) { return v.as_string(w); });
}

bool GgufFile::get_bool(const std::string& key, std::optional<bool> fallback) const {
    return get_with_fallback<bool>(*this, key, fallback,
                                   [](const GgufValue& v, const std::string& w) { return v.as_bool(w); });
}

const GgufTensorInfo* GgufFile::find_tensor(const std::string& name) const {
    auto it = tensor_index_.find(name);
    return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

const GgufTensorInfo& GgufFile::tensor(const std::string& name) const {
    if (const GgufTensorInfo* t = find_tensor(name)) return *t;
    throw FormatError(fmt::format("error loading {}: tensor '{}' not found ({} tensors in the file)", path_,
                                  name, tensors_.size()));
}

const uint8_t* GgufFile::data(const GgufTensorInfo& t) const {
    // The info may not come from this file; re-check so a mix-up cannot read
    // outside the mapping.
    const uint64_t avail = data_offset_ <= size_ ? size_ - data_offset_ : 0;
    if (t.offset > avail || t.n_bytes > avail - t.offset) {
        throw InvalidInput(fmt::format("tensor '{}' [offset {}, {} bytes] is outside the data of {}", t.name,
                                       t.offset, t.n_bytes, path_));
    }
    return base_ + data_offset_ + t.offset;
}

std::vector<float> GgufFile::dequantize(const GgufTensorInfo& t) const {
    // Unsupported types throw from dequantize_into before anything is written;
    // check first so we do not allocate a buffer we will never fill.
    if (!ggml_type_dequantizable(t.type)) dequantize_into(t, nullptr);
    std::vector<float> out(static_cast<size_t>(t.n_elements()));
    dequantize_into(t, out.data());
    return out;
}

void GgufFile::dequantize_into(const GgufTensorInfo& t, float* out) const {
    if (!ggml_type_dequantizable(t.type)) {
        throw FormatError(
            fmt::format("error loading {}: tensor '{}' has type {}, which memskew cannot dequantize; "
                        "supported: F32, F16, BF16, Q8_0, Q4_0",
                        path_, t.name, ggml_type_name(t.type)),
            "convert the model with llama.cpp's quantize tool to Q8_0 or F16 (or use the original "
            "safetensors weights)");
    }
    const GgmlTypeInfo* info = ggml_type_info(t.type);
    const int64_t n = t.n_elements();
    if (static_cast<uint64_t>(n / info->block_size * info->type_size) != t.n_bytes) {
        throw InvalidInput(fmt::format("tensor '{}': {} bytes do not match its shape and type {}", t.name,
                                       t.n_bytes, info->name));
    }
    dequantize_row(t.type, data(t), out, n);
}

}  // namespace memskew
