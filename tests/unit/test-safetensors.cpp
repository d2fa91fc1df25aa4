// safetensors reader/writer and sharded models. Files are written byte by byte
// following the format spec (the Python safetensors package is not in Debian),
// plus round trips through SafetensorsWriter. Every kind of malformed file has
// its own test asserting the exception type and the part of the message a
// user relies on.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "memskew/error.h"
#include "memskew/gguf.h"
#include "memskew/safetensors.h"
#include "test-util.h"

namespace fs = std::filesystem;
using namespace memskew;
using memskew::test::expect_error;

namespace {

std::string u64le(uint64_t v) {
    std::string s(8, '\0');
    for (int k = 0; k < 8; ++k) s[k] = static_cast<char>((v >> (8 * k)) & 0xff);
    return s;
}

template <typename T>
std::string le_bytes(const std::vector<T>& v) {
    std::string s(v.size() * sizeof(T), '\0');
    if (!v.empty()) std::memcpy(&s[0], v.data(), s.size());  // x86: host order is little-endian
    return s;
}

// A safetensors file: 8-byte length, header JSON (padded with spaces to
// `pad_to` when non-zero), data bytes. `length_override` fakes the length.
std::string st_bytes(const std::string& header, const std::string& data, size_t pad_to = 8,
                     std::optional<uint64_t> length_override = std::nullopt) {
    std::string h = header;
    if (pad_to > 0) h.append((pad_to - h.size() % pad_to) % pad_to, ' ');
    return u64le(length_override.value_or(h.size())) + h + data;
}

// One temporary folder for the whole program (temp_dir() makes a new one per call).
const std::string& root() {
    static const std::string dir = memskew::test::temp_dir();
    return dir;
}

// Writes `bytes` to `name` (absolute, or relative to root()).
std::string write_file(const std::string& name, const std::string& bytes) {
    const std::string path = fs::path(name).is_absolute() ? name : (fs::path(root()) / name).string();
    fs::create_directories(fs::path(path).parent_path());
    // A new file rather than a truncated one: ext4 flushes truncated files on
    // close, which made the corruption loop disk-bound.
    fs::remove(path);
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    return path;
}

std::string fresh_dir(const std::string& name) {
    const std::string dir = (fs::path(root()) / name).string();
    fs::remove_all(dir);
    fs::create_directories(dir);
    return dir;
}

// A one-tensor file with the given tensor entry and data size.
std::string one_tensor(const std::string& name, const std::string& entry, size_t data_size) {
    return write_file(name, st_bytes("{\"t\":" + entry + "}", std::string(data_size, '\x01')));
}

}  // namespace

// --- reading hand-written files -------------------------------------------------

TEST(Safetensors, ReadsHandWrittenFile) {
    // a: F32 [2,2] at [0,16); b: F16 [3] at [16,22); c: BF16 [2] at [22,26);
    // i: I64 [1] at [26,34). Header key order differs from data order on purpose.
    const std::string header =
        R"({"__metadata__":{"format":"pt","note":"x"},)"
        R"("i":{"dtype":"I64","shape":[1],"data_offsets":[26,34]},)"
        R"("a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},)"
        R"("c":{"dtype":"BF16","shape":[2],"data_offsets":[22,26]},)"
        R"("b":{"dtype":"F16","shape":[3],"data_offsets":[16,22]}})";
    std::string data = le_bytes<float>({1.0f, -2.5f, 3.25f, 0.0f});
    data += le_bytes<uint16_t>({0x3C00, 0xC000, 0x3800});  // fp16 1, -2, 0.5
    data += le_bytes<uint16_t>({0x3F80, 0xC040});          // bf16 1, -3
    data += le_bytes<int64_t>({-42});
    const std::string path = write_file("hand.safetensors", st_bytes(header, data));

    const auto f = SafetensorsFile::open(path);
    EXPECT_EQ(f->names(), (std::vector<std::string>{"a", "b", "c", "i"}));  // file order
    EXPECT_EQ(f->header_size() % 8, 0u);
    EXPECT_EQ(f->metadata().at("format"), "pt");
    EXPECT_EQ(f->metadata().at("note"), "x");

    const SafetensorsTensorInfo& a = f->tensor("a");
    EXPECT_EQ(a.dtype, SafetensorsDtype::kF32);
    EXPECT_EQ(a.shape, (std::vector<int64_t>{2, 2}));
    EXPECT_EQ(a.begin, 0u);
    EXPECT_EQ(a.end, 16u);
    EXPECT_EQ(a.n_elements(), 4);
    EXPECT_EQ(f->to_float("a"), (std::vector<float>{1.0f, -2.5f, 3.25f, 0.0f}));
    EXPECT_EQ(f->to_float("b"), (std::vector<float>{1.0f, -2.0f, 0.5f}));
    EXPECT_EQ(f->to_float("c"), (std::vector<float>{1.0f, -3.0f}));
    std::vector<float> out(3, 9.0f);
    f->read_float_into("b", out.data());
    EXPECT_EQ(out, (std::vector<float>{1.0f, -2.0f, 0.5f}));

    int64_t iv = 0;
    std::memcpy(&iv, f->data("i"), 8);
    EXPECT_EQ(iv, -42);
    EXPECT_EQ(f->data("i") - f->data("a"), 26);

    expect_error<FormatError>([&] { f->to_float("i"); },
                              {"tensor 'i' has dtype I64; expected a floating-point weight", path});
    expect_error<FormatError>([&] { f->tensor("missing"); }, {"tensor 'missing' not found", path});
    EXPECT_EQ(f->find("missing"), nullptr);
    EXPECT_TRUE(f->contains("c"));
}

TEST(Safetensors, UnalignedDataAndF64) {
    // A 53-byte header (not a multiple of 8) leaves the data unaligned; reads
    // must not depend on alignment.
    const std::string header = R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"d":{"dtype":"F64","shape":[1],"data_offsets":[8,16]}})";
    std::string data = le_bytes<float>({0.125f, -7.0f}) + le_bytes<double>({2.5});
    const std::string path = write_file("unaligned.safetensors", st_bytes(header, data, 0));
    const auto f = SafetensorsFile::open(path);
    EXPECT_EQ(f->header_size(), header.size());
    EXPECT_EQ(f->to_float("x"), (std::vector<float>{0.125f, -7.0f}));
    EXPECT_EQ(f->to_float("d"), (std::vector<float>{2.5f}));
}

TEST(Safetensors, ScalarsEmptyTensorsAndNoMetadata) {
    const std::string header =
        R"({"s":{"dtype":"F32","shape":[],"data_offsets":[0,4]},)"
        R"("e":{"dtype":"F16","shape":[0,3],"data_offsets":[4,4]},)"
        R"("e2":{"dtype":"BF16","shape":[0],"data_offsets":[4,4]},)"
        R"("u":{"dtype":"U8","shape":[3],"data_offsets":[4,7]}})";
    const std::string path = write_file("scalar.safetensors", st_bytes(header, le_bytes<float>({4.0f}) + "abc"));
    const auto f = SafetensorsFile::open(path);
    EXPECT_TRUE(f->metadata().empty());
    EXPECT_EQ(f->tensor("s").shape.size(), 0u);
    EXPECT_EQ(f->tensor("s").n_elements(), 1);
    EXPECT_EQ(f->to_float("s"), std::vector<float>{4.0f});
    EXPECT_EQ(f->tensor("e").n_elements(), 0);
    EXPECT_TRUE(f->to_float("e").empty());
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(f->data("u")), 3), "abc");
    EXPECT_EQ(f->names(), (std::vector<std::string>{"s", "e", "e2", "u"}));
}

TEST(Safetensors, KnowsEveryWholeByteDtype) {
    const std::vector<std::pair<std::string, size_t>> dtypes = {
        {"BOOL", 1}, {"U8", 1}, {"I8", 1}, {"F8_E5M2", 1}, {"F8_E4M3", 1}, {"I16", 2}, {"U16", 2}, {"F16", 2},
        {"BF16", 2}, {"I32", 4}, {"U32", 4}, {"F32", 4}, {"F64", 8}, {"I64", 8}, {"U64", 8}};
    for (const auto& [name, size] : dtypes) {
        const auto d = parse_safetensors_dtype(name);
        ASSERT_TRUE(d.has_value()) << name;
        EXPECT_EQ(safetensors_dtype_size(*d), size) << name;
        EXPECT_EQ(safetensors_dtype_name(*d), name);
    }
    EXPECT_FALSE(parse_safetensors_dtype("f32").has_value());
}

// --- malformed files -------------------------------------------------------------

TEST(SafetensorsBad, HeaderLengthExceedsFileSize) {
    const std::string bytes = st_bytes(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", "abcd", 8, 1000);
    const std::string path = write_file("bad-len.safetensors", bytes);
    expect_error<FormatError>([&] { SafetensorsFile::open(path); },
                              {path, "safetensors header length 1000 exceeds file size " + std::to_string(bytes.size())});
    // A huge length must not overflow the check.
    const std::string path2 = write_file("bad-len2.safetensors", st_bytes("{}", "", 8, ~uint64_t{0}));
    expect_error<FormatError>([&] { SafetensorsFile::open(path2); }, {"exceeds file size"});
}

TEST(SafetensorsBad, TooShortAndEmpty) {
    const std::string path = write_file("short.safetensors", "abc");
    expect_error<FormatError>([&] { SafetensorsFile::open(path); }, {path, "only 3 bytes"});
    const std::string empty = write_file("empty.safetensors", "");
    expect_error<FormatError>([&] { SafetensorsFile::open(empty); }, {empty, "file is empty"});
}

TEST(SafetensorsBad, MissingFileAndDirectory) {
    expect_error<IoError>([&] { SafetensorsFile::open("/nonexistent/x.safetensors"); },
                          {"cannot open '/nonexistent/x.safetensors'"});
    const std::string dir = fresh_dir("st-dir");
    expect_error<IoError>([&] { SafetensorsFile::open(dir); }, {"is a directory"});
}

TEST(SafetensorsBad, OtherFormatsGetAHint) {
    const std::string gguf = write_file("disguised.safetensors", std::string("GGUF\x03\0\0\0", 8) + std::string(64, '\0'));
    expect_error<FormatError>([&] { SafetensorsFile::open(gguf); }, {"exceeds file size"}, "GGUF");
    const std::string zip = write_file("pickle.safetensors", std::string("PK\x03\x04", 4) + std::string(60, 'x'));
    expect_error<FormatError>([&] { SafetensorsFile::open(zip); }, {"exceeds file size"}, "pytorch_model.bin");
}

TEST(SafetensorsBad, InvalidJson) {
    const std::string path = write_file("json.safetensors", st_bytes(R"({"a":{"dtype":"F32",)", ""));
    expect_error<FormatError>([&] { SafetensorsFile::open(path); }, {path, "header is not valid JSON"});
    const std::string path2 = write_file("json2.safetensors", st_bytes("[1,2]", ""));
    expect_error<FormatError>([&] { SafetensorsFile::open(path2); }, {"does not start with '{'"});
}

TEST(SafetensorsBad, OffsetsOutOfRange) {
    const std::string path = one_tensor("range.safetensors", R"({"dtype":"F32","shape":[2],"data_offsets":[4,12]})", 8);
    expect_error<FormatError>([&] { SafetensorsFile::open(path); },
                              {path, "tensor 't' data_offsets [4, 12] exceed the data section (8 bytes)"});
}

TEST(SafetensorsBad, BeginAfterEnd) {
    const std::string path = one_tensor("order.safetensors", R"({"dtype":"F32","shape":[1],"data_offsets":[8,4]})", 8);
    expect_error<FormatError>([&] { SafetensorsFile::open(path); }, {"tensor 't' has data_offsets [8, 4]: begin > end"});
}

TEST(SafetensorsBad, OverlappingTensors) {
    const std::string header =
        R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})";
    const std::string path = write_file("overlap.safetensors", st_bytes(header, std::string(12, '\0')));
    expect_error<FormatError>([&] { SafetensorsFile::open(path); }, {path, "tensors 'a' [0, 8] and 'b' [4, 12] overlap"});
    // Identical ranges overlap too.
    const std::string header2 =
        R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"I32","shape":[2],"data_offsets":[0,8]}})";
    const std::string path2 = write_file("overlap2.safetensors", st_bytes(header2, std::string(8, '\0')));
    expect_error<FormatError>([&] { SafetensorsFile::open(path2); }, {"overlap"});
}

TEST(SafetensorsBad, SizeDoesNotMatchShape) {
    const std::string path = one_tensor("size.safetensors", R"({"dtype":"BF16","shape":[2,3],"data_offsets":[0,8]})", 8);
    expect_error<FormatError>([&] { SafetensorsFile::open(path); },
                              {"tensor 't' spans 8 bytes, but shape [2, 3] of dtype BF16 needs 12 bytes"});
}

TEST(SafetensorsBad, UnknownDtype) {
    const std::string path = one_tensor("dtype.safetensors", R"({"dtype":"Q4_0","shape":[2],"data_offsets":[0,2]})", 2);
    expect_error<FormatError>([&] { SafetensorsFile::open(path); }, {"tensor 't' has unknown dtype 'Q4_0'"}, "F32");
    const std::string path2 = one_tensor("dtype2.safetensors", R"({"dtype":7,"shape":[2],"data_offsets":[0,2]})", 2);
    expect_error<FormatError>([&] { SafetensorsFile::open(path2); }, {"dtype is an integer"});
}

TEST(SafetensorsBad, MalformedEntries) {
    struct Case {
        const char* entry;
        const char* fragment;
    };
    const Case cases[] = {
        {R"({"dtype":"F32","shape":[1]})", "tensor 't' has no 'data_offsets'"},
        {R"({"shape":[1],"data_offsets":[0,4]})", "tensor 't' has no 'dtype'"},
        {R"({"dtype":"F32","data_offsets":[0,4]})", "tensor 't' has no 'shape'"},
        {R"({"dtype":"F32","shape":[-1],"data_offsets":[0,4]})", "expected non-negative integers"},
        {R"({"dtype":"F32","shape":[1.5],"data_offsets":[0,4]})", "expected non-negative integers"},
        {R"({"dtype":"F32","shape":"1","data_offsets":[0,4]})", "shape is a string"},
        {R"({"dtype":"F32","shape":[1],"data_offsets":[0]})", "expected [begin, end]"},
        {R"({"dtype":"F32","shape":[1],"data_offsets":[0,4,8]})", "expected [begin, end]"},
        {R"({"dtype":"F32","shape":[1],"data_offsets":[-4,0]})", "expected [begin, end]"},
        {R"({"dtype":"F32","shape":[1],"data_offsets":{"a":1}})", "expected [begin, end]"},
        {R"({"dtype":"U8","shape":[4294967296,4294967296,16],"data_offsets":[0,4]})", "too many elements"},
        {R"({"dtype":"F32","shape":[1],"data_offsets":[0,18446744073709551615]})", "exceed the data section"},
        {R"([1,2])", "tensor 't' is a list"},
    };
    int k = 0;
    for (const Case& c : cases) {
        SCOPED_TRACE(c.entry);
        const std::string path = one_tensor("entry" + std::to_string(k++) + ".safetensors", c.entry, 4);
        expect_error<FormatError>([&] { SafetensorsFile::open(path); }, {path, c.fragment});
    }
}

TEST(SafetensorsBad, DuplicatesAndMetadataTypes) {
    const std::string dup =
        R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}})";
    const std::string p1 = write_file("dup.safetensors", st_bytes(dup, "xy"));
    expect_error<FormatError>([&] { SafetensorsFile::open(p1); }, {"tensor 'a' appears twice"});
    const std::string meta = R"({"__metadata__":{"n":3}})";
    const std::string p2 = write_file("meta.safetensors", st_bytes(meta, ""));
    expect_error<FormatError>([&] { SafetensorsFile::open(p2); },
                              {"'__metadata__' value of key 'n' is an integer, expected a string"});
}

// Random corruption of a valid file must produce FormatError or a valid
// file, never a crash or an out-of-bounds read (run under ASan in CI).
TEST(SafetensorsBad, RandomCorruptionNeverCrashes) {
    SafetensorsWriter w;
    std::vector<float> x(37);
    for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i) * 0.5f;
    w.set_metadata("format", "pt");
    w.add_tensor("model.embed_tokens.weight", {37}, x.data(), SafetensorsDtype::kBF16);
    w.add_tensor("model.norm.weight", {37}, x.data(), SafetensorsDtype::kF32);
    w.add_tensor("lm_head.weight", {1, 37}, x.data(), SafetensorsDtype::kF16);
    const std::string good_path = (fs::path(root()) / "good.safetensors").string();
    w.write(good_path);
    const std::string good = memskew::test::read_file(good_path);

    std::mt19937 rng(1234);
    int n_ok = 0;
    int n_bad = 0;
    for (int iter = 0; iter < 1500; ++iter) {
        std::string bytes = good;
        const int kind = iter % 3;
        if (kind == 0) {  // flip bytes in the length + header
            const size_t span = std::min<size_t>(bytes.size(), 8 + 260);
            for (int j = 0; j < 3; ++j) bytes[rng() % span] = static_cast<char>(rng() & 0xff);
        } else if (kind == 1) {  // truncate
            bytes.resize(rng() % bytes.size());
        } else {  // replace a digit in the header
            const size_t pos = bytes.find_first_of("0123456789", 8 + rng() % 200);
            if (pos != std::string::npos) bytes[pos] = static_cast<char>('0' + rng() % 10);
        }
        const std::string path = write_file("fuzz.safetensors", bytes);
        try {
            const auto f = SafetensorsFile::open(path);
            for (const auto& t : f->tensors()) {
                if (safetensors_dtype_is_float(t.dtype)) f->to_float(t);
            }
            ++n_ok;
        } catch (const FormatError&) {
            ++n_bad;
        }
    }
    EXPECT_GT(n_bad, 100);
    EXPECT_GT(n_ok, 0);
}

// --- writer ------------------------------------------------------------------------

TEST(SafetensorsWriter, ByteLayoutMatchesTheReference) {
    // What safetensors.torch.save_file({"w": torch.tensor([1., 2.])}, metadata={"format": "pt"}) writes.
    SafetensorsWriter w;
    const float v[2] = {1.0f, 2.0f};
    w.add_tensor("w", {2}, v);
    w.set_metadata("format", "pt");
    const std::string path = (fs::path(root()) / "ref.safetensors").string();
    w.write(path);
    const std::string json = R"({"__metadata__":{"format":"pt"},"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
    const std::string expected = st_bytes(json, le_bytes<float>({1.0f, 2.0f}));
    EXPECT_EQ(memskew::test::read_file(path), expected);
    EXPECT_FALSE(fs::exists(path + ".tmp-" + std::to_string(::getpid())));
}

TEST(SafetensorsWriter, RoundTripAllFloatTypes) {
    std::vector<float> a(6), b(5), c(4);
    for (size_t i = 0; i < a.size(); ++i) a[i] = 0.1f * static_cast<float>(i) - 0.3f;
    for (size_t i = 0; i < b.size(); ++i) b[i] = 1.0f / static_cast<float>(i + 3);
    for (size_t i = 0; i < c.size(); ++i) c[i] = -100.0f + 33.3f * static_cast<float>(i);
    const int64_t ids[3] = {7, -1, 1LL << 40};

    SafetensorsWriter w;
    w.add_tensor("z.f16", {5}, b.data(), SafetensorsDtype::kF16);
    w.add_tensor("a.f32", {2, 3}, a.data(), SafetensorsDtype::kF32);
    w.add_tensor("m.bf16", {2, 2}, c.data(), SafetensorsDtype::kBF16);
    w.add_raw("ids", SafetensorsDtype::kI64, {3}, ids, sizeof ids);
    w.add_tensor("scalar", {}, a.data());
    w.set_metadata("format", "pt");
    w.set_metadata("memskew", "test \"quoted\" ü");
    const std::string path = (fs::path(root()) / "rt.safetensors").string();
    w.write(path);

    const auto f = SafetensorsFile::open(path);
    EXPECT_EQ(f->header_size() % 8, 0u);
    // Reference order: dtype descending (I64, F32, BF16, F16), then name.
    EXPECT_EQ(f->names(), (std::vector<std::string>{"ids", "a.f32", "scalar", "m.bf16", "z.f16"}));
    for (const auto& t : f->tensors()) {
        EXPECT_EQ((f->data_offset() + t.begin) % safetensors_dtype_size(t.dtype), 0u) << t.name << " is unaligned";
    }
    EXPECT_EQ(f->to_float("a.f32"), a);
    EXPECT_EQ(f->tensor("a.f32").shape, (std::vector<int64_t>{2, 3}));
    EXPECT_EQ(f->to_float("scalar"), std::vector<float>{a[0]});
    const auto fb = f->to_float("z.f16");
    const auto fc = f->to_float("m.bf16");
    for (size_t i = 0; i < b.size(); ++i) EXPECT_EQ(fb[i], fp16_to_fp32(fp32_to_fp16(b[i])));
    for (size_t i = 0; i < c.size(); ++i) EXPECT_EQ(fc[i], bf16_to_fp32(fp32_to_bf16(c[i])));
    int64_t got[3];
    std::memcpy(got, f->data("ids"), sizeof got);
    EXPECT_EQ(got[2], 1LL << 40);
    EXPECT_EQ(f->metadata().at("memskew"), "test \"quoted\" ü");
}

TEST(SafetensorsWriter, EmptyFileAndErrors) {
    SafetensorsWriter w;
    const std::string path = (fs::path(root()) / "none.safetensors").string();
    w.write(path);
    EXPECT_EQ(SafetensorsFile::open(path)->tensors().size(), 0u);

    const float v[2] = {1, 2};
    w.add_tensor("x", {2}, v);
    expect_error<InvalidInput>([&] { w.add_tensor("x", {2}, v); }, {"'x' added twice"});
    expect_error<InvalidInput>([&] { w.add_tensor("y", {-2}, v); }, {"dimension of size -2"});
    expect_error<InvalidInput>([&] { w.add_tensor("y", {2}, v, SafetensorsDtype::kI32); }, {"not I32"});
    expect_error<InvalidInput>([&] { w.add_raw("y", SafetensorsDtype::kI32, {3}, v, 8); }, {"8 bytes given"});
    expect_error<InvalidInput>([&] { w.add_tensor("__metadata__", {2}, v); }, {"reserved"});
    expect_error<IoError>([&] { w.write("/nonexistent-folder/x.safetensors"); }, {"cannot write"});
}

// --- sharded models ------------------------------------------------------------------

namespace {

// Writes a shard with the given tensors (each {n} floats starting at `start`).
void write_shard(const std::string& path, const std::vector<std::pair<std::string, float>>& tensors) {
    SafetensorsWriter w;
    w.set_metadata("format", "pt");
    for (const auto& [name, start] : tensors) {
        const float v[3] = {start, start + 1, start + 2};
        w.add_tensor(name, {3}, v, SafetensorsDtype::kBF16);
    }
    w.write(path);
}

const char* kIndex = R"({
  "metadata": {"total_size": 24, "format": "pt"},
  "weight_map": {
    "lm_head.weight": "model-00002-of-00002.safetensors",
    "model.embed_tokens.weight": "model-00001-of-00002.safetensors",
    "model.layers.0.mlp.up_proj.weight": "model-00001-of-00002.safetensors",
    "model.norm.weight": "model-00002-of-00002.safetensors"
  }
})";

std::string sharded_folder(const std::string& name) {
    const std::string dir = fresh_dir(name);
    write_shard(dir + "/model-00001-of-00002.safetensors",
                {{"model.embed_tokens.weight", 1}, {"model.layers.0.mlp.up_proj.weight", 10}});
    write_shard(dir + "/model-00002-of-00002.safetensors", {{"model.norm.weight", 20}, {"lm_head.weight", 30}});
    write_file(dir + "/model.safetensors.index.json", kIndex);
    return dir;
}

}  // namespace

TEST(SafetensorsModel, SingleFile) {
    const std::string dir = fresh_dir("single");
    write_shard(dir + "/model.safetensors", {{"a", 1}, {"b", 4}});
    const auto m = SafetensorsModel::open(dir);
    EXPECT_EQ(m->shards().size(), 1u);
    EXPECT_EQ(m->index_path(), "");
    EXPECT_EQ(m->names(), (std::vector<std::string>{"a", "b"}));
    EXPECT_EQ(m->to_float("b"), (std::vector<float>{4, 5, 6}));
    EXPECT_EQ(m->metadata().at("format"), "pt");
    // The file itself works too.
    EXPECT_EQ(SafetensorsModel::open(dir + "/model.safetensors")->size(), 2u);
    expect_error<FormatError>([&] { m->tensor("c"); }, {"tensor 'c' not found", dir});
}

TEST(SafetensorsModel, ShardedIndex) {
    const std::string dir = sharded_folder("sharded");
    const auto m = SafetensorsModel::open(dir);
    EXPECT_EQ(m->shards().size(), 2u);
    EXPECT_EQ(m->index_path(), dir + "/model.safetensors.index.json");
    EXPECT_EQ(m->size(), 4u);
    EXPECT_EQ(m->metadata().at("total_size"), "24");
    EXPECT_EQ(m->metadata().at("format"), "pt");
    EXPECT_EQ(m->to_float("model.embed_tokens.weight"), (std::vector<float>{1, 2, 3}));
    EXPECT_EQ(m->to_float("lm_head.weight"), (std::vector<float>{30, 31, 32}));
    std::vector<float> out(3);
    m->read_float_into("model.norm.weight", out.data());
    EXPECT_EQ(out, (std::vector<float>{20, 21, 22}));
    EXPECT_NE(m->file_of("model.norm.weight").path().find("model-00002-of-00002"), std::string::npos);
    EXPECT_EQ(m->tensor("model.layers.0.mlp.up_proj.weight").dtype, SafetensorsDtype::kBF16);
    EXPECT_TRUE(m->contains("model.norm.weight"));
    EXPECT_FALSE(m->contains("nope"));
    // The index path itself works too.
    EXPECT_EQ(SafetensorsModel::open(dir + "/model.safetensors.index.json")->size(), 4u);
}

TEST(SafetensorsModel, SingleFileWinsOverIndex) {
    const std::string dir = sharded_folder("both");
    write_shard(dir + "/model.safetensors", {{"only", 0}});
    EXPECT_EQ(SafetensorsModel::open(dir)->names(), std::vector<std::string>{"only"});
}

TEST(SafetensorsModel, IndexNamesMissingShard) {
    const std::string dir = sharded_folder("missing-shard");
    fs::remove(dir + "/model-00002-of-00002.safetensors");
    expect_error<IoError>([&] { SafetensorsModel::open(dir); },
                          {"model.safetensors.index.json", "names shard 'model-00002-of-00002.safetensors'",
                           "does not exist"});
}

TEST(SafetensorsModel, TensorListedButAbsentFromShard) {
    const std::string dir = sharded_folder("absent");
    write_shard(dir + "/model-00002-of-00002.safetensors", {{"model.norm.weight", 20}});
    expect_error<FormatError>([&] { SafetensorsModel::open(dir); },
                              {"tensor 'lm_head.weight' is listed in the index for shard "
                               "'model-00002-of-00002.safetensors' but absent from it"});
}

TEST(SafetensorsModel, SameTensorInTwoShards) {
    const std::string dir = sharded_folder("twice");
    write_shard(dir + "/model-00002-of-00002.safetensors",
                {{"model.norm.weight", 20}, {"lm_head.weight", 30}, {"model.embed_tokens.weight", 1}});
    expect_error<FormatError>([&] { SafetensorsModel::open(dir); },
                              {"tensor 'model.embed_tokens.weight' is stored in two shards",
                               "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"});
    // Listed twice in the index itself (duplicate JSON keys).
    const std::string dir2 = sharded_folder("twice-index");
    write_file(dir2 + "/model.safetensors.index.json",
               R"({"weight_map": {"a": "model-00001-of-00002.safetensors", "a": "model-00002-of-00002.safetensors"}})");
    expect_error<FormatError>([&] { SafetensorsModel::open(dir2); }, {"lists tensor 'a' twice"});
}

TEST(SafetensorsModel, MalformedIndex) {
    auto with_index = [&](const std::string& name, const std::string& text) {
        const std::string dir = sharded_folder(name);
        write_file(dir + "/model.safetensors.index.json", text);
        return dir;
    };
    const std::string d1 = with_index("idx-json", "{\"weight_map\": ");
    expect_error<FormatError>([&] { SafetensorsModel::open(d1); }, {"model.safetensors.index.json", "not valid JSON"});
    const std::string d2 = with_index("idx-nomap", R"({"metadata": {}})");
    expect_error<FormatError>([&] { SafetensorsModel::open(d2); }, {"missing \"weight_map\""});
    const std::string d3 = with_index("idx-type", R"({"weight_map": {"a": 3}})");
    expect_error<FormatError>([&] { SafetensorsModel::open(d3); }, {"tensor 'a' maps to an integer"});
    const std::string d4 = with_index("idx-escape", R"({"weight_map": {"a": "../../etc/passwd"}})");
    expect_error<FormatError>([&] { SafetensorsModel::open(d4); }, {"names shard '../../etc/passwd'"});
    const std::string d5 = with_index("idx-abs", R"({"weight_map": {"a": "/etc/passwd"}})");
    expect_error<FormatError>([&] { SafetensorsModel::open(d5); }, {"names shard '/etc/passwd'"});
    const std::string d6 = with_index("idx-empty", R"({"weight_map": {}})");
    expect_error<FormatError>([&] { SafetensorsModel::open(d6); }, {"\"weight_map\" is empty"});
}

TEST(SafetensorsModel, FolderWithoutWeights) {
    const std::string dir = fresh_dir("noweights");
    expect_error<IoError>([&] { SafetensorsModel::open(dir); }, {"no model.safetensors or model.safetensors.index.json"});
    write_file(dir + "/pytorch_model.bin", "PK");
    expect_error<IoError>([&] { SafetensorsModel::open(dir); }, {"no model.safetensors"}, "pytorch_model.bin");
    expect_error<IoError>([&] { SafetensorsModel::open(dir + "/nothing.safetensors"); }, {"cannot open"});
}
