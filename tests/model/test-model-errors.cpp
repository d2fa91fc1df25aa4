// Bad model files and bad requests give clear, typed errors naming the file and
// the problem, never a crash. Each case starts from a valid tiny model written
// by memskew and damages one thing.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "memskew/engine.h"
#include "memskew/error.h"
#include "memskew/tokenizer.h"
#include "test-util.h"

using namespace memskew;
using memskew::test::expect_error;

namespace {

std::string write_tiny(const std::string& dir) {
    const std::string path = dir + "/tiny.gguf";
    Model::random_llama(test::tiny_llama_config(), make_byte_vocab(), 7)->save_gguf(path);
    return path;
}

std::string read_bytes(const std::string& path) { return test::read_file(path); }

std::string write_bytes(const std::string& dir, const std::string& name, const std::string& bytes) {
    const std::string path = dir + "/" + name;
    std::ofstream(path, std::ios::binary) << bytes;
    return path;
}

// Offset just after the GGUF string `s` (uint64 length + bytes) in the file.
size_t after_string(const std::string& bytes, const std::string& s) {
    std::string needle(8, '\0');
    uint64_t n = s.size();
    std::memcpy(&needle[0], &n, 8);
    needle += s;
    const size_t at = bytes.find(needle);
    EXPECT_NE(at, std::string::npos) << "string '" << s << "' not found";
    return at + needle.size();
}

}  // namespace

TEST(ModelErrors, ValidTinyModelLoads) {
    const std::string dir = test::temp_dir();
    auto m = Model::load(write_tiny(dir));
    EXPECT_EQ(m->config().n_layers, 2);
    EXPECT_EQ(m->config().n_kv_heads, 2);
    EXPECT_EQ(m->tokenizer().n_vocab(), 258);
}

TEST(ModelErrors, MissingFile) {
    expect_error<IoError>([] { Model::load("/nonexistent/model.gguf"); }, {"/nonexistent/model.gguf"});
}

TEST(ModelErrors, TruncatedFile) {
    const std::string dir = test::temp_dir();
    const std::string bytes = read_bytes(write_tiny(dir));
    const std::string head = write_bytes(dir, "head.gguf", bytes.substr(0, 200));
    expect_error<FormatError>([&] { Model::load(head); }, {"head.gguf", "truncated"});
    // Cut inside the tensor data: the tensor table points past the end.
    const std::string body = write_bytes(dir, "body.gguf", bytes.substr(0, bytes.size() - 1000));
    expect_error<FormatError>([&] { Model::load(body); }, {"body.gguf", "past end of file"});
}

TEST(ModelErrors, BadMagicAndVersion) {
    const std::string dir = test::temp_dir();
    std::string bytes = read_bytes(write_tiny(dir));
    std::string magic = bytes;
    magic[0] = 'X';
    const std::string p1 = write_bytes(dir, "magic.gguf", magic);
    expect_error<FormatError>([&] { Model::load(p1); }, {"magic.gguf", "GGUF"});
    std::string version = bytes;
    const uint32_t v = 99;
    std::memcpy(&version[4], &v, 4);
    const std::string p2 = write_bytes(dir, "version.gguf", version);
    expect_error<FormatError>([&] { Model::load(p2); }, {"version.gguf", "99"});
}

TEST(ModelErrors, TensorOffsetOutOfRange) {
    const std::string dir = test::temp_dir();
    std::string bytes = read_bytes(write_tiny(dir));
    // Tensor info: name, n_dims u32, ne u64 x n_dims, type u32, offset u64.
    const size_t at = after_string(bytes, "output.weight");
    const uint64_t huge = 1ull << 40;
    std::memcpy(&bytes[at + 4 + 16 + 4], &huge, 8);
    const std::string p = write_bytes(dir, "offset.gguf", bytes);
    expect_error<FormatError>([&] { Model::load(p); }, {"offset.gguf", "output.weight"});
}

TEST(ModelErrors, UnsupportedTensorType) {
    const std::string dir = test::temp_dir();
    std::string bytes = read_bytes(write_tiny(dir));
    // Q4_1 (ggml type 3) has 32-element blocks of 20 bytes: it fits inside the
    // F32 data, so the file opens, but memskew cannot dequantize it.
    const size_t at = after_string(bytes, "blk.0.ffn_up.weight");
    const uint32_t q4_1 = 3;
    std::memcpy(&bytes[at + 4 + 16], &q4_1, 4);
    const std::string p = write_bytes(dir, "type.gguf", bytes);
    expect_error<FormatError>([&] { Model::load(p); }, {"type.gguf", "blk.0.ffn_up.weight", "Q4_1"});
}

TEST(ModelErrors, ShapeContradictsMetadata) {
    const std::string dir = test::temp_dir();
    std::string bytes = read_bytes(write_tiny(dir));
    // llama.feed_forward_length: u32 value type (4) then the value 64 -> 96.
    const size_t at = after_string(bytes, "llama.feed_forward_length");
    const uint32_t ffn = 96;
    std::memcpy(&bytes[at + 4], &ffn, 4);
    const std::string p = write_bytes(dir, "shape.gguf", bytes);
    expect_error<FormatError>([&] { Model::load(p); }, {"shape.gguf", "blk.0.ffn_gate.weight", "[96, 32]"});
}

TEST(ModelErrors, UnknownArchitecture) {
    const std::string dir = test::temp_dir();
    std::string bytes = read_bytes(write_tiny(dir));
    const size_t at = after_string(bytes, "general.architecture");
    // value type u32 (8 = string), then the string "llama" -> "mamba".
    std::memcpy(&bytes[at + 4 + 8], "mamba", 5);
    const std::string p = write_bytes(dir, "arch.gguf", bytes);
    expect_error<FormatError>([&] { Model::load(p); }, {"arch.gguf", "unsupported architecture 'mamba'"});
}

TEST(ModelErrors, MissingTensor) {
    const std::string dir = test::temp_dir();
    std::string bytes = read_bytes(write_tiny(dir));
    const size_t at = after_string(bytes, "blk.1.attn_v.weight");
    bytes[at - 8] = 'x';  // rename to blk.1.attn_v.xeight
    const std::string p = write_bytes(dir, "missing.gguf", bytes);
    expect_error<FormatError>([&] { Model::load(p); }, {"missing.gguf", "missing tensor 'blk.1.attn_v.weight'"});
}

TEST(ModelErrors, PromptLongerThanContext) {
    auto m = Model::random_llama(test::tiny_llama_config(), make_byte_vocab(), 7);
    Engine engine(m);
    std::vector<int32_t> prompt(60, 65), reference(10, 66);
    expect_error<InvalidInput>([&] { engine.score({{prompt, reference}}); }, {"context of 64 tokens"});
    std::vector<int32_t> long_prompt(65, 65);
    expect_error<InvalidInput>([&] { engine.generate({{long_prompt, {}, 4}}); }, {"context of 64 tokens"});
    // Generation up to the context stops cleanly with reason "context".
    GenerateParams p;
    p.stop_at_eos = false;
    const auto res = engine.generate({{std::vector<int32_t>(60, 65), {}, 100}}, p).front();
    EXPECT_EQ(res.reason, StopReason::kContext);
    EXPECT_EQ(res.tokens.size(), 5u);  // positions 60..64: the last one is produced but cannot be fed
}

TEST(ModelErrors, BadRequests) {
    auto m = Model::random_llama(test::tiny_llama_config(), make_byte_vocab(), 7);
    Engine engine(m);
    expect_error<InvalidInput>([&] { engine.score({{{}, {1, 2}}}); }, {"empty prompt"});
    expect_error<InvalidInput>([&] { engine.score({{{1}, {}}}); }, {"empty reference"});
    expect_error<InvalidInput>([&] { engine.score({{{1}, {5000}}}); }, {"outside the vocabulary"});
    expect_error<InvalidInput>([&] { engine.score({{{1}, {2}}}, {256, SamplingParams{0.0, 0, 1.0}}); },
                               {"temperature"});
}
