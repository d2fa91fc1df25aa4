// GGUF reader/writer: round trips, number formats, dequantization, and one
// test per kind of malformed file (each asserting the exception type and the
// part of the message a user relies on).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
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
#include "test-util.h"

namespace fs = std::filesystem;
using namespace memskew;
using memskew::test::expect_error;

namespace {

// Builds GGUF bytes by hand so tests can produce files the writer never would.
class Raw {
public:
    std::string bytes;

    template <typename T>
    Raw& put(T v) {
        bytes.append(reinterpret_cast<const char*>(&v), sizeof(T));
        return *this;
    }
    Raw& u32(uint32_t v) { return put(v); }
    Raw& u64(uint64_t v) { return put(v); }
    Raw& str(const std::string& s) {
        u64(s.size());
        bytes += s;
        return *this;
    }
    Raw& header(uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
        bytes += "GGUF";
        return u32(version).u64(n_tensors).u64(n_kv);
    }
    Raw& kv_u32(const std::string& key, uint32_t v) { return str(key).u32(4).u32(v); }
    Raw& kv_str(const std::string& key, const std::string& v) { return str(key).u32(8).str(v); }
    Raw& tensor_info(const std::string& name, const std::vector<uint64_t>& ne, uint32_t type,
                     uint64_t offset) {
        str(name).u32(static_cast<uint32_t>(ne.size()));
        for (uint64_t d : ne) u64(d);
        return u32(type).u64(offset);
    }
    Raw& pad(size_t alignment = 32) {
        bytes.resize((bytes.size() + alignment - 1) / alignment * alignment, '\0');
        return *this;
    }
    Raw& zeros(size_t n) {
        bytes.append(n, '\0');
        return *this;
    }
    size_t size() const { return bytes.size(); }
};

std::string write_bytes(const std::string& name, const std::string& bytes) {
    static const std::string dir = memskew::test::temp_dir();
    const std::string path = dir + "/" + name;
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    return path;
}

template <typename E>
void expect_open_error(const std::string& name, const std::string& bytes,
                       const std::vector<std::string>& substrings) {
    const std::string path = write_bytes(name, bytes);
    std::vector<std::string> all = substrings;
    all.push_back(path);  // every message names the file
    expect_error<E>([&] { GgufFile::open(path); }, all);
}

// A small valid file: two KVs, two F32 tensors ("a" [4] at 0, "b" [2, 8] at 32).
struct ValidFile {
    Raw raw;
    size_t key_name_pos = 0;     // inside the first key's name
    size_t tensor_info_pos = 0;  // inside the second tensor's info
    size_t data_pos = 0;         // start of the data section
};

ValidFile make_valid() {
    ValidFile v;
    v.raw.header(3, 2, 2);
    v.key_name_pos = v.raw.size() + 8 + 3;
    v.raw.kv_str("general.architecture", "llama").kv_u32("llama.block_count", 5);
    v.raw.tensor_info("a", {4}, 0, 0);
    v.tensor_info_pos = v.raw.size() + 8 + 1 + 4 + 4;
    v.raw.tensor_info("b", {8, 2}, 0, 32).pad();
    v.data_pos = v.raw.size();
    for (int k = 0; k < 4; ++k) v.raw.put<float>(static_cast<float>(k));
    v.raw.zeros(16);  // pad to 32
    for (int k = 0; k < 16; ++k) v.raw.put<float>(static_cast<float>(100 + k));
    return v;
}

uint32_t bits(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    return u;
}
float from_bits(uint32_t u) {
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

}  // namespace

// --- writer -> reader round trip --------------------------------------------

TEST(GgufRoundTrip, EveryValueTypeAndTensor) {
    const std::string path = memskew::test::temp_dir() + "/rt.gguf";
    GgufWriter w;
    auto scalar = [](GgufType t, uint64_t u, int64_t i, double f) {
        GgufValue v;
        v.type = t;
        v.u = u;
        v.i = i;
        v.f = f;
        return v;
    };
    w.set("u8", scalar(GgufType::kUint8, 255, 0, 0));
    w.set("i8", scalar(GgufType::kInt8, 0, -128, 0));
    w.set("u16", scalar(GgufType::kUint16, 65535, 0, 0));
    w.set("i16", scalar(GgufType::kInt16, 0, -32768, 0));
    w.set("u32", GgufValue::from_uint32(4000000000u));
    w.set("i32", GgufValue::from_int32(-2000000000));
    w.set("f32", GgufValue::from_float32(-2.5f));
    w.set("bool", GgufValue::from_bool(true));
    w.set("str", GgufValue::from_string("héllo \"world\"\n"));
    w.set("empty_str", GgufValue::from_string(""));
    w.set("u64", GgufValue::from_uint64(18000000000000000000ull));
    w.set("i64", scalar(GgufType::kInt64, 0, std::numeric_limits<int64_t>::min(), 0));
    w.set("f64", scalar(GgufType::kFloat64, 0, 0, 3.141592653589793));
    w.set("strs", GgufValue::from_strings({"<s>", "", "▁the", std::string("a\0b", 3)}));
    w.set("floats", GgufValue::from_floats({0.5f, -1.0f, 1e-8f}));
    w.set("ints", GgufValue::from_int32s({-1, 0, 7}));
    GgufValue empty_arr = GgufValue::from_int32s({});
    w.set("empty_arr", empty_arr);
    // Nested: array of (array of string), second one empty; and array of arrays of uint8.
    GgufValue nested;
    nested.type = GgufType::kArray;
    nested.array_type = GgufType::kArray;
    nested.array = {GgufValue::from_strings({"x", "yz"}), GgufValue::from_strings({})};
    w.set("nested", nested);
    GgufValue nested_u8;
    nested_u8.type = GgufType::kArray;
    nested_u8.array_type = GgufType::kArray;
    GgufValue inner;
    inner.type = GgufType::kArray;
    inner.array_type = GgufType::kUint8;
    inner.array = {scalar(GgufType::kUint8, 1, 0, 0), scalar(GgufType::kUint8, 200, 0, 0)};
    nested_u8.array = {inner, inner};
    w.set("nested_u8", nested_u8);

    // Tensors: torch shape [3, 5] -> ne {5, 3}. Values exact in every format.
    std::vector<float> t32(15), t16(15), tb16(15);
    for (int k = 0; k < 15; ++k) {
        t32[k] = 0.1f * static_cast<float>(k) - 0.7f;
        t16[k] = static_cast<float>(k) * 0.25f - 2.0f;  // multiples of 1/4: exact in fp16
        tb16[k] = static_cast<float>(k * 8 - 64);       // small integers: exact in bf16
    }
    w.add_tensor("w.f32", {3, 5}, t32.data(), GgmlType::kF32);
    w.add_tensor("w.f16", {15}, t16.data(), GgmlType::kF16);
    w.add_tensor("w.bf16", {1, 3, 1, 5}, tb16.data(), GgmlType::kBF16);
    w.write(path);

    auto f = GgufFile::open(path);
    EXPECT_EQ(f->version(), 3u);
    EXPECT_EQ(f->alignment(), 32u);
    ASSERT_EQ(f->metadata().size(), 19u);
    // Insertion order is preserved.
    EXPECT_EQ(f->metadata()[0].first, "u8");
    EXPECT_EQ(f->metadata()[18].first, "nested_u8");

    EXPECT_EQ(f->get("u8").type, GgufType::kUint8);
    EXPECT_EQ(f->get_int("u8"), 255);
    EXPECT_EQ(f->get_int("i8"), -128);
    EXPECT_EQ(f->get("i8").type, GgufType::kInt8);
    EXPECT_EQ(f->get_int("u16"), 65535);
    EXPECT_EQ(f->get_int("i16"), -32768);
    EXPECT_EQ(f->get_int("u32"), 4000000000LL);
    EXPECT_EQ(f->get_int("i32"), -2000000000LL);
    EXPECT_EQ(f->get_double("f32"), -2.5);
    EXPECT_EQ(f->get("f32").type, GgufType::kFloat32);
    EXPECT_TRUE(f->get_bool("bool"));
    EXPECT_EQ(f->get_string("str"), "héllo \"world\"\n");
    EXPECT_EQ(f->get_string("empty_str"), "");
    EXPECT_EQ(f->get("u64").u, 18000000000000000000ull);
    EXPECT_EQ(f->get_int("i64"), std::numeric_limits<int64_t>::min());
    EXPECT_EQ(f->get_double("f64"), 3.141592653589793);
    EXPECT_EQ(f->get("strs").as_strings(),
              (std::vector<std::string>{"<s>", "", "▁the", std::string("a\0b", 3)}));
    EXPECT_EQ(f->get("floats").as_floats(), (std::vector<float>{0.5f, -1.0f, 1e-8f}));
    EXPECT_EQ(f->get("ints").as_ints(), (std::vector<int64_t>{-1, 0, 7}));
    EXPECT_EQ(f->get("empty_arr").type, GgufType::kArray);
    EXPECT_EQ(f->get("empty_arr").array_type, GgufType::kInt32);
    EXPECT_TRUE(f->get("empty_arr").array.empty());
    const GgufValue& n = f->get("nested");
    ASSERT_EQ(n.array_type, GgufType::kArray);
    ASSERT_EQ(n.array.size(), 2u);
    EXPECT_EQ(n.array[0].as_strings(), (std::vector<std::string>{"x", "yz"}));
    EXPECT_EQ(n.array[1].array_type, GgufType::kString);
    EXPECT_TRUE(n.array[1].array.empty());
    const GgufValue& n8 = f->get("nested_u8");
    ASSERT_EQ(n8.array.size(), 2u);
    EXPECT_EQ(n8.array[1].as_ints(), (std::vector<int64_t>{1, 200}));
    EXPECT_EQ(n8.to_display(), "[[1, 200], [1, 200]]");

    ASSERT_EQ(f->tensors().size(), 3u);
    const GgufTensorInfo& a = f->tensor("w.f32");
    EXPECT_EQ(a.ne, (std::vector<int64_t>{5, 3}));
    EXPECT_EQ(a.torch_shape(), (std::vector<int64_t>{3, 5}));
    EXPECT_EQ(a.type, static_cast<uint32_t>(GgmlType::kF32));
    EXPECT_EQ(a.n_bytes, 60u);
    EXPECT_EQ(f->dequantize(a), t32);
    const GgufTensorInfo& b = f->tensor("w.f16");
    EXPECT_EQ(b.n_bytes, 30u);
    EXPECT_EQ(b.offset % 32, 0u);
    EXPECT_EQ(f->dequantize(b), t16);
    const GgufTensorInfo& c = f->tensor("w.bf16");
    EXPECT_EQ(c.ne, (std::vector<int64_t>{5, 1, 3, 1}));
    EXPECT_EQ(c.n_elements(), 15);
    EXPECT_EQ(f->dequantize(c), tb16);
    EXPECT_EQ(f->find_tensor("nope"), nullptr);
    expect_error<FormatError>([&] { f->tensor("nope"); }, {"tensor 'nope' not found"});
    // The temporary file was renamed away.
    EXPECT_EQ(std::distance(fs::directory_iterator(fs::path(path).parent_path()), fs::directory_iterator()), 1);
}

TEST(GgufRoundTrip, CustomAlignmentAndRounding) {
    const std::string path = memskew::test::temp_dir() + "/align.gguf";
    GgufWriter w;
    w.set("general.architecture", GgufValue::from_string("x"));
    w.set("general.architecture", GgufValue::from_string("llama"));  // replaces, keeps position
    w.set("k", GgufValue::from_uint32(1));
    // 1 + 2^-11 is the tie between fp16 1.0 and 1 + 2^-10: stored as 1.0 (even).
    const std::vector<float> v = {1.0f + std::ldexp(1.0f, -11), 3.0f, 5.0f};
    w.add_tensor("t0", {3}, v.data(), GgmlType::kF16);
    w.add_tensor("t1", {3}, v.data(), GgmlType::kF32);
    w.write(path, 64);
    auto f = GgufFile::open(path);
    EXPECT_EQ(f->alignment(), 64u);
    EXPECT_EQ(f->get_int("general.alignment"), 64);
    EXPECT_EQ(f->metadata()[0].first, "general.architecture");
    EXPECT_EQ(f->get_string("general.architecture"), "llama");
    EXPECT_EQ(f->tensor("t1").offset, 64u);
    EXPECT_EQ(f->dequantize(f->tensor("t0")), (std::vector<float>{1.0f, 3.0f, 5.0f}));
    EXPECT_EQ((reinterpret_cast<uintptr_t>(f->data(f->tensor("t1"))) % 64), 0u);
}

TEST(GgufWriter, RejectsBadInput) {
    GgufWriter w;
    const float x[4] = {1, 2, 3, 4};
    expect_error<InvalidInput>([&] { w.add_tensor("t", {1, 1, 1, 1, 4}, x); }, {"'t'", "5 dimensions"});
    expect_error<InvalidInput>([&] { w.add_tensor("t", {0, 4}, x); }, {"'t'", "size 0"});
    expect_error<InvalidInput>([&] { w.add_tensor("t", {4}, x, GgmlType::kQ8_0); }, {"Q8_0"});
    w.add_tensor("t", {4}, x);
    expect_error<InvalidInput>([&] { w.add_tensor("t", {4}, x); }, {"'t' added twice"});
    expect_error<InvalidInput>([&] { w.write("/tmp/never.gguf", 48); }, {"alignment 48"});
    GgufValue bad = GgufValue::from_strings({"a"});
    bad.array.push_back(GgufValue::from_uint32(1));  // mixed element types
    w.set("bad", bad);
    const std::string path = memskew::test::temp_dir() + "/bad.gguf";
    expect_error<InvalidInput>([&] { w.write(path); }, {"'bad'", "element 1 has type uint32"});
    EXPECT_FALSE(fs::exists(path));
    EXPECT_TRUE(fs::is_empty(fs::path(path).parent_path()));  // no temp file left
}

TEST(GgufWriter, UnwritableFolderIsIoError) {
    GgufWriter w;
    w.set("a", GgufValue::from_uint32(1));
    expect_error<IoError>([&] { w.write("/nonexistent-folder-memskew/x.gguf"); },
                          {"cannot write '/nonexistent-folder-memskew/x.gguf'", "No such file or directory"});
    if (::geteuid() != 0) {  // root ignores permissions
        const std::string dir = memskew::test::temp_dir() + "/ro";
        fs::create_directory(dir);
        ::chmod(dir.c_str(), 0555);
        expect_error<IoError>([&] { w.write(dir + "/x.gguf"); }, {"cannot write", "Permission denied"});
        ::chmod(dir.c_str(), 0755);
    }
}

TEST(GgufWriter, FailedRenameRemovesTemp) {
    // The target is a non-empty directory: writing succeeds, rename fails.
    const std::string dir = memskew::test::temp_dir();
    const std::string target = dir + "/out.gguf";
    fs::create_directory(target);
    std::ofstream(target + "/keep").put('x');
    GgufWriter w;
    w.set("a", GgufValue::from_uint32(1));
    expect_error<IoError>([&] { w.write(target); }, {"cannot write", "rename"});
    size_t n_entries = 0;
    for (const auto& e : fs::directory_iterator(dir)) {
        ++n_entries;
        EXPECT_EQ(e.path().filename(), "out.gguf");
    }
    EXPECT_EQ(n_entries, 1u);
}

// --- fp16 / bf16 --------------------------------------------------------------

TEST(GgufFloat, Fp16KnownValues) {
    EXPECT_EQ(fp32_to_fp16(1.0f), 0x3C00);
    // 2.5 = 1.25 * 2^1: exponent 1 + 15 = 16 -> 0x4000, mantissa 0.25 * 1024 = 0x100.
    EXPECT_EQ(fp32_to_fp16(-2.5f), 0xC100);
    EXPECT_EQ(fp32_to_fp16(65504.0f), 0x7BFF);  // largest finite half
    EXPECT_EQ(fp32_to_fp16(0.0f), 0x0000);
    EXPECT_EQ(fp32_to_fp16(-0.0f), 0x8000);
    EXPECT_EQ(fp32_to_fp16(std::numeric_limits<float>::infinity()), 0x7C00);
    EXPECT_EQ(fp32_to_fp16(-std::numeric_limits<float>::infinity()), 0xFC00);
    EXPECT_TRUE(std::isnan(fp16_to_fp32(fp32_to_fp16(std::nanf("")))));

    // Overflow: 65520 is halfway between 65504 (mantissa 0x3FF, odd) and 65536
    // (= inf in half); the tie goes to the even side, inf. 65519 rounds down.
    EXPECT_EQ(fp32_to_fp16(65519.0f), 0x7BFF);
    EXPECT_EQ(fp32_to_fp16(65520.0f), 0x7C00);
    EXPECT_EQ(fp32_to_fp16(1e10f), 0x7C00);

    // Subnormals: unit 2^-24. 2^-24 -> 0x0001; 1023 * 2^-24 -> 0x03FF; 2^-14 -> 0x0400 (normal).
    EXPECT_EQ(fp32_to_fp16(std::ldexp(1.0f, -24)), 0x0001);
    EXPECT_EQ(fp32_to_fp16(1023.0f * std::ldexp(1.0f, -24)), 0x03FF);
    EXPECT_EQ(fp32_to_fp16(std::ldexp(1.0f, -14)), 0x0400);
    // 2^-25 is halfway between 0 and 2^-24: tie to even -> 0.
    EXPECT_EQ(fp32_to_fp16(std::ldexp(1.0f, -25)), 0x0000);
    // 1.5 * 2^-24 is halfway between units 1 and 2: tie to even -> 2.
    EXPECT_EQ(fp32_to_fp16(1.5f * std::ldexp(1.0f, -24)), 0x0002);
    // 2.5 * 2^-24 is halfway between 2 and 3 -> 2 (even); slightly above -> 3.
    EXPECT_EQ(fp32_to_fp16(2.5f * std::ldexp(1.0f, -24)), 0x0002);
    EXPECT_EQ(fp32_to_fp16(2.5001f * std::ldexp(1.0f, -24)), 0x0003);
    // Just below 2^-25 rounds to 0; just above rounds to 1 unit.
    EXPECT_EQ(fp32_to_fp16(0.9999f * std::ldexp(1.0f, -25)), 0x0000);
    EXPECT_EQ(fp32_to_fp16(1.0001f * std::ldexp(1.0f, -25)), 0x0001);
    // 1023.5 units is halfway between 0x03FF (odd) and 0x0400 -> 0x0400 (carry into the exponent).
    EXPECT_EQ(fp32_to_fp16(1023.5f * std::ldexp(1.0f, -24)), 0x0400);

    // Normal ties: half's mantissa step at 1.0 is 2^-10.
    // 1 + 2^-11 is halfway between 0x3C00 (even) and 0x3C01 -> 0x3C00.
    EXPECT_EQ(fp32_to_fp16(1.0f + std::ldexp(1.0f, -11)), 0x3C00);
    // 1 + 3 * 2^-11 is halfway between 0x3C01 and 0x3C02 (even) -> 0x3C02.
    EXPECT_EQ(fp32_to_fp16(1.0f + 3.0f * std::ldexp(1.0f, -11)), 0x3C02);
    // 1 + 2^-11 + 2^-20 is just above the tie -> 0x3C01.
    EXPECT_EQ(fp32_to_fp16(1.0f + std::ldexp(1.0f, -11) + std::ldexp(1.0f, -20)), 0x3C01);
    // 2 - 2^-11 is halfway between 0x3BFF (odd) and 2.0 = 0x4000 -> 0x4000 (carry).
    EXPECT_EQ(fp32_to_fp16(2.0f - std::ldexp(1.0f, -11)), 0x4000);

    EXPECT_EQ(fp16_to_fp32(0x3C00), 1.0f);
    EXPECT_EQ(fp16_to_fp32(0xC100), -2.5f);
    EXPECT_EQ(fp16_to_fp32(0x7BFF), 65504.0f);
    EXPECT_EQ(fp16_to_fp32(0x0001), std::ldexp(1.0f, -24));
    EXPECT_EQ(fp16_to_fp32(0x03FF), 1023.0f * std::ldexp(1.0f, -24));
    EXPECT_EQ(fp16_to_fp32(0x8001), -std::ldexp(1.0f, -24));
    EXPECT_EQ(fp16_to_fp32(0x0400), std::ldexp(1.0f, -14));
    EXPECT_EQ(bits(fp16_to_fp32(0x8000)), 0x80000000u);
    EXPECT_EQ(fp16_to_fp32(0x7C00), std::numeric_limits<float>::infinity());
    EXPECT_EQ(fp16_to_fp32(0xFC00), -std::numeric_limits<float>::infinity());
    EXPECT_TRUE(std::isnan(fp16_to_fp32(0x7E00)));

    // Every finite half survives half -> float -> half exactly.
    for (uint32_t h = 0; h < 0x10000; ++h) {
        if ((h & 0x7C00) == 0x7C00 && (h & 0x3FF) != 0) continue;  // NaN payloads
        ASSERT_EQ(fp32_to_fp16(fp16_to_fp32(static_cast<uint16_t>(h))), h) << std::hex << h;
    }
}

TEST(GgufFloat, Bf16KnownValues) {
    EXPECT_EQ(fp32_to_bf16(1.0f), 0x3F80);       // 1.0f = 0x3F800000
    EXPECT_EQ(fp32_to_bf16(-2.5f), 0xC020);      // -2.5f = 0xC0200000
    EXPECT_EQ(bf16_to_fp32(0x3F80), 1.0f);
    EXPECT_EQ(bf16_to_fp32(0xC020), -2.5f);
    // Ties: 0x3F808000 is halfway between 0x3F80 (even) and 0x3F81 -> 0x3F80.
    EXPECT_EQ(fp32_to_bf16(from_bits(0x3F808000u)), 0x3F80);
    // 0x3F818000 is halfway between 0x3F81 and 0x3F82 (even) -> 0x3F82.
    EXPECT_EQ(fp32_to_bf16(from_bits(0x3F818000u)), 0x3F82);
    // Just above the tie rounds up, just below rounds down.
    EXPECT_EQ(fp32_to_bf16(from_bits(0x3F808001u)), 0x3F81);
    EXPECT_EQ(fp32_to_bf16(from_bits(0x3F817FFFu)), 0x3F81);
    // FLT_MAX (0x7F7FFFFF) is above the tie between 0x7F7F and 0x7F80 (inf) -> inf.
    EXPECT_EQ(fp32_to_bf16(std::numeric_limits<float>::max()), 0x7F80);
    EXPECT_EQ(fp32_to_bf16(std::numeric_limits<float>::infinity()), 0x7F80);
    // Float subnormals keep their top bits: 0x00010000 -> 0x0001.
    EXPECT_EQ(fp32_to_bf16(from_bits(0x00010000u)), 0x0001);
    EXPECT_EQ(bits(bf16_to_fp32(0x0001)), 0x00010000u);
    EXPECT_EQ(fp32_to_bf16(-0.0f), 0x8000);
    // NaN stays NaN, even one whose payload is only in the dropped low bits.
    const uint16_t nan = fp32_to_bf16(from_bits(0x7F800001u));
    EXPECT_TRUE(std::isnan(bf16_to_fp32(nan)));
}

// --- dequantization --------------------------------------------------------------

TEST(GgufDequant, Q8_0HandBuiltBlocks) {
    // Block 0: d = 0.25 (fp16 0x3400), qs = -128, -1, 0, 1, 127, then k - 16 for k = 5..31.
    // Block 1: d = -2.0 (fp16 0xC000), qs[0] = 3, others 0.
    std::vector<uint8_t> blocks(68, 0);
    blocks[0] = 0x00, blocks[1] = 0x34;
    const int8_t head[5] = {-128, -1, 0, 1, 127};
    for (int k = 0; k < 5; ++k) blocks[2 + k] = static_cast<uint8_t>(head[k]);
    for (int k = 5; k < 32; ++k) blocks[2 + k] = static_cast<uint8_t>(static_cast<int8_t>(k - 16));
    blocks[34] = 0x00, blocks[35] = 0xC0;
    blocks[36] = 3;
    std::vector<float> out(64, -99.0f);
    dequantize_row(static_cast<uint32_t>(GgmlType::kQ8_0), blocks.data(), out.data(), 64);
    // By hand: -128 * 0.25 = -32, -1 * 0.25 = -0.25, 0, 0.25, 127 * 0.25 = 31.75.
    EXPECT_EQ(out[0], -32.0f);
    EXPECT_EQ(out[1], -0.25f);
    EXPECT_EQ(out[2], 0.0f);
    EXPECT_EQ(out[3], 0.25f);
    EXPECT_EQ(out[4], 31.75f);
    EXPECT_EQ(out[5], -2.75f);   // (5 - 16) * 0.25
    EXPECT_EQ(out[31], 3.75f);   // (31 - 16) * 0.25
    EXPECT_EQ(out[32], -6.0f);   // 3 * -2
    EXPECT_EQ(out[33], -0.0f);
    EXPECT_EQ(out[63], -0.0f);
}

TEST(GgufDequant, Q4_0HandBuiltBlock) {
    // d = 0.5 (fp16 0x3800); qs[j] = j | (15 - j) << 4.
    // Low nibble of qs[j] is element j: (j - 8) * 0.5; high nibble is element
    // j + 16: (15 - j - 8) * 0.5 = (7 - j) * 0.5.
    std::vector<uint8_t> block(18);
    block[0] = 0x00, block[1] = 0x38;
    for (int j = 0; j < 16; ++j) block[2 + j] = static_cast<uint8_t>(j | ((15 - j) << 4));
    std::vector<float> out(32);
    dequantize_row(static_cast<uint32_t>(GgmlType::kQ4_0), block.data(), out.data(), 32);
    const float expected[32] = {
        -4.0f, -3.5f, -3.0f, -2.5f, -2.0f, -1.5f, -1.0f, -0.5f,  // nibbles 0..7
        0.0f,  0.5f,  1.0f,  1.5f,  2.0f,  2.5f,  3.0f,  3.5f,   // nibbles 8..15
        3.5f,  3.0f,  2.5f,  2.0f,  1.5f,  1.0f,  0.5f,  0.0f,   // high nibbles 15..8
        -0.5f, -1.0f, -1.5f, -2.0f, -2.5f, -3.0f, -3.5f, -4.0f,  // high nibbles 7..0
    };
    for (int k = 0; k < 32; ++k) EXPECT_EQ(out[k], expected[k]) << "element " << k;
}

TEST(GgufDequant, QuantizedTensorsInFile) {
    // Q8_0 tensor ne {32, 2} at offset 0 (68 bytes) and Q4_0 ne {32} at 96.
    Raw r;
    r.header(3, 2, 0).tensor_info("q8", {32, 2}, 8, 0).tensor_info("q4", {32}, 2, 96).pad();
    std::string q8(68, '\0');
    q8[1] = 0x3C;  // d = 1
    for (int k = 0; k < 32; ++k) q8[2 + k] = static_cast<char>(k - 16);
    q8[35] = 0x40;  // d = 2 (0x4000)
    q8[36] = 5;
    r.bytes += q8;
    r.zeros(96 - 68);
    std::string q4(18, '\0');
    q4[1] = 0x3C;  // d = 1
    for (int j = 0; j < 16; ++j) q4[2 + j] = static_cast<char>(0x88);  // all nibbles 8 -> 0
    q4[2] = static_cast<char>(0xF0);  // element 0: 0 - 8 = -8; element 16: 15 - 8 = 7
    r.bytes += q4;
    auto f = GgufFile::open(write_bytes("quant.gguf", r.bytes));
    const auto& t8 = f->tensor("q8");
    EXPECT_EQ(t8.n_bytes, 68u);
    EXPECT_EQ(t8.torch_shape(), (std::vector<int64_t>{2, 32}));
    std::vector<float> v8 = f->dequantize(t8);
    ASSERT_EQ(v8.size(), 64u);
    EXPECT_EQ(v8[0], -16.0f);
    EXPECT_EQ(v8[31], 15.0f);
    EXPECT_EQ(v8[32], 10.0f);  // 5 * 2
    std::vector<float> v4 = f->dequantize(f->tensor("q4"));
    ASSERT_EQ(v4.size(), 32u);
    EXPECT_EQ(v4[0], -8.0f);
    EXPECT_EQ(v4[16], 7.0f);
    EXPECT_EQ(v4[1], 0.0f);
}

TEST(GgufDequant, UnsupportedTypeOpensButDequantizeThrows) {
    // Q4_K (type 12): blocks of 256 elements in 144 bytes.
    Raw r;
    r.header(3, 1, 1).kv_str("general.architecture", "llama").tensor_info("blk.0.ffn_up.weight", {256, 2}, 12, 0).pad();
    r.zeros(288);
    auto f = GgufFile::open(write_bytes("q4k.gguf", r.bytes));
    EXPECT_EQ(f->get_string("general.architecture"), "llama");
    const auto& t = f->tensor("blk.0.ffn_up.weight");
    EXPECT_EQ(t.n_bytes, 288u);
    EXPECT_STREQ(ggml_type_name(t.type), "Q4_K");
    expect_error<FormatError>([&] { f->dequantize(t); },
                              {"tensor 'blk.0.ffn_up.weight' has type Q4_K, which memskew cannot dequantize",
                               "supported: F32, F16, BF16, Q8_0, Q4_0"});
    try {
        f->dequantize(t);
    } catch (const FormatError& e) {
        EXPECT_NE(e.hint().find("Q8_0"), std::string::npos);
        EXPECT_NE(e.hint().find("quantize"), std::string::npos);
    }
    // Q4_K bounds are still checked at open(): one byte short fails.
    Raw s;
    s.header(3, 1, 0).tensor_info("x", {256, 2}, 12, 0).pad().zeros(287);
    expect_open_error<FormatError>("q4k-short.gguf", s.bytes, {"tensor 'x'", "extends past end of file"});
}

TEST(GgufDequant, TypeNames) {
    EXPECT_STREQ(ggml_type_name(0), "F32");
    EXPECT_STREQ(ggml_type_name(8), "Q8_0");
    EXPECT_STREQ(ggml_type_name(14), "Q6_K");
    EXPECT_STREQ(ggml_type_name(30), "BF16");
    EXPECT_STREQ(ggml_type_name(99), "type 99");
    ASSERT_NE(ggml_type_info(10), nullptr);
    EXPECT_EQ(ggml_type_info(10)->type_size, 84);  // Q2_K
    EXPECT_EQ(ggml_type_info(4), nullptr);          // removed Q4_2
    EXPECT_TRUE(ggml_type_dequantizable(2));
    EXPECT_FALSE(ggml_type_dequantizable(12));
}

// --- metadata access ------------------------------------------------------------

TEST(GgufMetadata, FallbacksAndTypeMismatch) {
    auto f = GgufFile::open(write_bytes("meta.gguf", make_valid().raw.bytes));
    EXPECT_EQ(f->get_int("llama.block_count"), 5);
    EXPECT_EQ(f->get_int("llama.missing", 42), 42);
    EXPECT_EQ(f->get_string("missing", std::string("dflt")), "dflt");
    EXPECT_EQ(f->get_double("llama.block_count"), 5.0);
    EXPECT_FALSE(f->get_bool("missing", false));
    expect_error<FormatError>([&] { f->get_int("llama.missing"); }, {"missing key 'llama.missing'", "meta.gguf"});
    expect_error<FormatError>([&] { f->get("nope"); }, {"missing key 'nope'"});
    // Present with the wrong type: the fallback does not hide it.
    expect_error<FormatError>([&] { f->get_int("general.architecture", 1); },
                              {"key 'general.architecture'", "string", "integer", "meta.gguf"});
    expect_error<FormatError>([&] { f->get_string("llama.block_count", std::string()); },
                              {"key 'llama.block_count'", "uint32", "expected string"});
    expect_error<FormatError>([&] { f->get_bool("llama.block_count"); }, {"uint32", "bool"});
    EXPECT_EQ(f->get("general.architecture").to_display(), "\"llama\"");
}

TEST(GgufMetadata, TensorTableOfValidFile) {
    ValidFile v = make_valid();
    auto f = GgufFile::open(write_bytes("valid.gguf", v.raw.bytes));
    ASSERT_EQ(f->tensors().size(), 2u);
    EXPECT_EQ(f->dequantize(f->tensor("a")), (std::vector<float>{0, 1, 2, 3}));
    std::vector<float> b = f->dequantize(f->tensor("b"));
    ASSERT_EQ(b.size(), 16u);
    EXPECT_EQ(b[15], 115.0f);
    EXPECT_EQ(f->data(f->tensor("a")), f->data(f->tensor("b")) - 32);
}

// --- malformed files ---------------------------------------------------------------

TEST(GgufBad, MissingFile) {
    expect_error<IoError>([] { GgufFile::open("/no/such/file.gguf"); },
                          {"cannot open '/no/such/file.gguf': No such file or directory"});
}

TEST(GgufBad, Directory) {
    const std::string dir = memskew::test::temp_dir();
    expect_error<IoError>([&] { GgufFile::open(dir); }, {"cannot open '" + dir + "'", "directory"});
}

TEST(GgufBad, EmptyFile) {
    expect_open_error<FormatError>("empty.gguf", "", {"empty"});
}

TEST(GgufBad, TruncatedHeader) {
    const std::string bytes = make_valid().raw.bytes.substr(0, 10);
    expect_open_error<FormatError>("trunc-header.gguf", bytes,
                                   {"truncated: expected 8 more bytes while reading tensor count at offset 8"});
    expect_open_error<FormatError>("trunc-header2.gguf", bytes.substr(0, 6),
                                   {"truncated: expected 4 more bytes while reading version at offset 4"});
}

TEST(GgufBad, TruncatedInsideKey) {
    ValidFile v = make_valid();
    expect_open_error<FormatError>("trunc-key.gguf", v.raw.bytes.substr(0, v.key_name_pos),
                                   {"truncated: expected 20 more bytes while reading key name", "at offset 32"});
    // Cut inside the first value (the string "llama").
    const size_t value_pos = 24 + 8 + 20 + 4 + 8 + 2;
    expect_open_error<FormatError>("trunc-value.gguf", v.raw.bytes.substr(0, value_pos),
                                   {"truncated", "key 'general.architecture'"});
}

TEST(GgufBad, TruncatedInsideTensorInfos) {
    ValidFile v = make_valid();
    expect_open_error<FormatError>("trunc-info.gguf", v.raw.bytes.substr(0, v.tensor_info_pos),
                                   {"truncated: expected 8 more bytes while reading dimension of tensor 'b'"});
}

TEST(GgufBad, TruncatedInsideData) {
    ValidFile v = make_valid();
    expect_open_error<FormatError>("trunc-data.gguf", v.raw.bytes.substr(0, v.raw.size() - 1),
                                   {"tensor 'b' data [offset", "64 bytes] extends past end of file"});
    // Cut right after the padding: no data at all.
    expect_open_error<FormatError>("trunc-data2.gguf", v.raw.bytes.substr(0, v.data_pos),
                                   {"tensor 'a'", "extends past end of file (size " + std::to_string(v.data_pos)});
}

TEST(GgufBad, EveryTruncationFailsCleanly) {
    // No prefix of a valid file may crash or be accepted.
    const std::string bytes = make_valid().raw.bytes;
    for (size_t n = 0; n < bytes.size(); ++n) {
        const std::string path = write_bytes("prefix.gguf", bytes.substr(0, n));
        EXPECT_THROW(GgufFile::open(path), FormatError) << "prefix of " << n << " bytes";
    }
}

TEST(GgufBad, RandomCorruptionNeverCrashes) {
    // Flip random bytes of a valid file: open() either succeeds (then all
    // tensor data must be readable) or throws a memskew::Error.
    const std::string good = make_valid().raw.bytes;
    std::mt19937 rng(1234);
    for (int iter = 0; iter < 500; ++iter) {
        std::string bytes = good;
        const int n_flips = 1 + static_cast<int>(rng() % 4);
        for (int k = 0; k < n_flips; ++k) bytes[rng() % bytes.size()] = static_cast<char>(rng());
        const std::string path = write_bytes("fuzz.gguf", bytes);
        try {
            auto f = GgufFile::open(path);
            for (const auto& t : f->tensors()) {
                if (ggml_type_dequantizable(t.type)) f->dequantize(t);
            }
        } catch (const Error&) {
        }
    }
}

TEST(GgufBad, BadMagic) {
    Raw r;
    r.bytes = "GGML";
    r.u32(3).u64(0).u64(0);
    expect_open_error<FormatError>("magic.gguf", r.bytes, {"not a GGUF file", "magic is 'GGML'", "expected 'GGUF'"});
    // A safetensors file: 8-byte header length, then JSON.
    std::string st(8, '\0');
    st[0] = 2;
    st += "{}";
    const std::string path = write_bytes("model.safetensors", st);
    try {
        GgufFile::open(path);
        ADD_FAILURE();
    } catch (const FormatError& e) {
        EXPECT_NE(e.hint().find("safetensors"), std::string::npos) << e.hint();
    }
}

TEST(GgufBad, Version1) {
    Raw r;
    r.header(1, 0, 0);
    expect_open_error<FormatError>("v1.gguf", r.bytes, {"GGUF version 1 is not supported", "versions 2 and 3"});
}

TEST(GgufBad, Version99) {
    Raw r;
    r.header(99, 0, 0);
    expect_open_error<FormatError>("v99.gguf", r.bytes, {"unsupported GGUF version 99"});
}

TEST(GgufBad, BigEndian) {
    Raw r;
    r.header(0x03000000, 0, 0);
    expect_open_error<FormatError>("be.gguf", r.bytes, {"big-endian"});
}

TEST(GgufBad, Version2Accepted) {
    std::string bytes = make_valid().raw.bytes;
    bytes[4] = 2;
    auto f = GgufFile::open(write_bytes("v2.gguf", bytes));
    EXPECT_EQ(f->version(), 2u);
    EXPECT_EQ(f->tensors().size(), 2u);
}

TEST(GgufBad, TensorOffsetPastEof) {
    Raw r;
    r.header(3, 1, 0).tensor_info("blk.0.attn_q.weight", {4}, 0, 1024).pad().zeros(16);
    expect_open_error<FormatError>("past.gguf", r.bytes,
                                   {"tensor 'blk.0.attn_q.weight' data [offset 1120, 16 bytes] extends past end "
                                    "of file (size 112)"});
    // An offset near 2^64 must not wrap around.
    Raw h;
    h.header(3, 1, 0).tensor_info("t", {4}, 0, 0xFFFFFFFFFFFFFFE0ull).pad().zeros(16);
    expect_open_error<FormatError>("wrap.gguf", h.bytes, {"tensor 't'", "extends past end of file"});
}

TEST(GgufBad, OverlappingTensors) {
    Raw r;
    // "a": 16 floats (64 bytes) at 0; "b": 4 floats at 32, inside "a".
    r.header(3, 2, 0).tensor_info("a", {16}, 0, 0).tensor_info("b", {4}, 0, 32).pad().zeros(64);
    expect_open_error<FormatError>("overlap.gguf", r.bytes, {"tensors 'a'", "'b'", "overlap"});
}

TEST(GgufBad, MisalignedOffset) {
    Raw r;
    r.header(3, 2, 0).tensor_info("a", {4}, 0, 0).tensor_info("b", {4}, 0, 16).pad().zeros(64);
    expect_open_error<FormatError>("misaligned.gguf", r.bytes,
                                   {"tensor 'b' data offset 16 is not a multiple of the alignment 32"});
}

TEST(GgufBad, FiveDimensions) {
    Raw r;
    r.header(3, 1, 0).tensor_info("t", {1, 1, 1, 1, 4}, 0, 0).pad().zeros(16);
    expect_open_error<FormatError>("ndims.gguf", r.bytes, {"tensor 't' has 5 dimensions, expected 1 to 4"});
}

TEST(GgufBad, ZeroDimension) {
    Raw r;
    r.header(3, 1, 0).tensor_info("t", {4, 0}, 0, 0).pad().zeros(16);
    expect_open_error<FormatError>("zero-dim.gguf", r.bytes, {"tensor 't'", "ne[1] = 0"});
}

TEST(GgufBad, RowNotMultipleOfBlock) {
    Raw r;
    r.header(3, 1, 0).tensor_info("q", {48}, 8, 0).pad().zeros(102);
    expect_open_error<FormatError>("block.gguf", r.bytes,
                                   {"tensor 'q' of type Q8_0 has row length ne[0] = 48", "block size 32"});
}

TEST(GgufBad, HostileStringLength) {
    Raw r;
    r.header(3, 0, 1).u64(1ull << 60);  // key name length 2^60
    r.zeros(16);
    expect_open_error<FormatError>("hostile-str.gguf", r.bytes,
                                   {"truncated: expected 1152921504606846976 more bytes while reading key name"});
    Raw v;
    v.header(3, 0, 1).str("k").u32(8).u64(~0ull);  // string value length 2^64 - 1
    expect_open_error<FormatError>("hostile-str2.gguf", v.bytes, {"truncated", "key 'k'"});
}

TEST(GgufBad, HostileCounts) {
    Raw r;
    r.header(3, 0, 1ull << 60);
    expect_open_error<FormatError>("hostile-kv.gguf", r.bytes,
                                   {"truncated", "key 0 of 1152921504606846976"});
    Raw t;
    t.header(3, 1ull << 60, 0);
    expect_open_error<FormatError>("hostile-tensors.gguf", t.bytes,
                                   {"truncated", "tensor info 0 of 1152921504606846976"});
    Raw a;
    a.header(3, 0, 1).str("tokenizer.ggml.tokens").u32(9).u32(8).u64(1ull << 60);
    expect_open_error<FormatError>("hostile-array.gguf", a.bytes,
                                   {"array length of key 'tokenizer.ggml.tokens'", "1152921504606846976"});
}

TEST(GgufBad, DeeplyNestedArrays) {
    Raw r;
    r.header(3, 0, 1).str("deep").u32(9);
    for (int k = 0; k < 1000; ++k) r.u32(9).u64(1);
    expect_open_error<FormatError>("deep.gguf", r.bytes, {"nested deeper than"});
}

TEST(GgufBad, UnknownTensorTypeId) {
    Raw r;
    r.header(3, 1, 0).tensor_info("t", {4}, 200, 0).pad().zeros(16);
    expect_open_error<FormatError>("unknown-type.gguf", r.bytes, {"tensor 't' has unknown ggml type id 200"});
}

TEST(GgufBad, UnknownValueType) {
    Raw r;
    r.header(3, 0, 1).str("k").u32(13).u32(0);
    expect_open_error<FormatError>("unknown-vtype.gguf", r.bytes, {"key 'k' has unknown value type 13"});
}

TEST(GgufBad, DuplicateKey) {
    Raw r;
    r.header(3, 0, 2).kv_u32("general.alignment", 32).kv_u32("general.alignment", 64);
    expect_open_error<FormatError>("dup-key.gguf", r.bytes, {"duplicate key 'general.alignment'"});
}

TEST(GgufBad, DuplicateTensorName) {
    Raw r;
    r.header(3, 2, 0).tensor_info("t", {4}, 0, 0).tensor_info("t", {4}, 0, 32).pad().zeros(64);
    expect_open_error<FormatError>("dup-tensor.gguf", r.bytes, {"duplicate tensor name 't'"});
}

TEST(GgufBad, BadAlignment) {
    Raw r;
    r.header(3, 0, 1).kv_u32("general.alignment", 48);
    expect_open_error<FormatError>("align48.gguf", r.bytes, {"general.alignment", "48", "power of two"});
    Raw z;
    z.header(3, 0, 1).kv_str("general.alignment", "32");
    expect_open_error<FormatError>("align-str.gguf", z.bytes, {"general.alignment", "string"});
}

// --- real files from ../shared --------------------------------------------------------

TEST(GgufShared, Stories260K) {
    MEMSKEW_REQUIRE_SHARED(path, "models/stories260K/stories260K.gguf");
    auto f = GgufFile::open(path);
    EXPECT_EQ(f->get_string("general.architecture"), "llama");
    EXPECT_EQ(f->get_int("llama.embedding_length"), 64);
    EXPECT_EQ(f->get_int("llama.block_count"), 5);
    EXPECT_EQ(f->get_int("llama.attention.head_count"), 8);
    EXPECT_EQ(f->get_int("llama.attention.head_count_kv"), 4);
    EXPECT_EQ(f->get_int("llama.feed_forward_length"), 172);
    EXPECT_EQ(f->get("tokenizer.ggml.tokens").as_strings().size(), 512u);
    ASSERT_FALSE(f->tensors().empty());
    int64_t n_params = 0;
    for (const auto& t : f->tensors()) {
        EXPECT_EQ(t.type, static_cast<uint32_t>(GgmlType::kF32)) << t.name;
        n_params += t.n_elements();
    }
    EXPECT_GT(n_params, 200000);
    EXPECT_LT(n_params, 320000);
    const auto& emb = f->tensor("token_embd.weight");
    EXPECT_EQ(emb.ne, (std::vector<int64_t>{64, 512}));
    EXPECT_EQ(emb.torch_shape(), (std::vector<int64_t>{512, 64}));
    std::vector<float> w = f->dequantize(emb);
    ASSERT_EQ(w.size(), 512u * 64u);
    double sum_sq = 0;
    for (float x : w) {
        ASSERT_TRUE(std::isfinite(x));
        sum_sq += static_cast<double>(x) * x;
    }
    EXPECT_GT(sum_sq, 0.0);  // trained weights, not zeros
}

TEST(GgufShared, VocabOnlyFiles) {
    MEMSKEW_REQUIRE_SHARED(spm, "tokenizers/gguf/ggml-vocab-llama-spm.gguf");
    MEMSKEW_REQUIRE_SHARED(gpt2, "tokenizers/gguf/ggml-vocab-gpt-2.gguf");
    auto a = GgufFile::open(spm);
    EXPECT_EQ(a->get_string("tokenizer.ggml.model"), "llama");
    EXPECT_GT(a->get("tokenizer.ggml.tokens").array.size(), 1000u);
    const auto t0 = std::chrono::steady_clock::now();
    auto b = GgufFile::open(gpt2);
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_EQ(b->get_string("tokenizer.ggml.model"), "gpt2");
    std::printf("[ info ] ggml-vocab-gpt-2.gguf: %zu tokens parsed in %.2f ms\n",
                b->get("tokenizer.ggml.tokens").array.size(), ms);
}

TEST(GgufLarge, LargeVocabRoundTrips) {
    // 150k tokens with scores and types, as in a large BPE vocabulary.
    const size_t n = 150000;
    std::vector<std::string> tokens(n);
    std::vector<float> scores(n);
    std::vector<int32_t> types(n);
    for (size_t k = 0; k < n; ++k) {
        tokens[k] = "tok_" + std::to_string(k * 7919);
        scores[k] = -static_cast<float>(k);
        types[k] = 1;
    }
    GgufWriter w;
    w.set("tokenizer.ggml.model", GgufValue::from_string("gpt2"));
    w.set("tokenizer.ggml.tokens", GgufValue::from_strings(tokens));
    w.set("tokenizer.ggml.scores", GgufValue::from_floats(scores));
    w.set("tokenizer.ggml.token_type", GgufValue::from_int32s(types));
    const std::string path = memskew::test::temp_dir() + "/vocab.gguf";
    w.write(path);
    const auto t0 = std::chrono::steady_clock::now();
    auto f = GgufFile::open(path);
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    std::printf("[ info ] 150k-token vocabulary parsed in %.2f ms\n", ms);
    ASSERT_EQ(f->get("tokenizer.ggml.tokens").array.size(), n);
    EXPECT_EQ(f->get("tokenizer.ggml.tokens").array[12345].s, tokens[12345]);
    // No timing assertion: speed is measured by benchmarks, not tests.
}
