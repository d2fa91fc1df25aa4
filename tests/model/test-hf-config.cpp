// Hugging Face side files: config.json for each supported architecture (the
// real files of TinyLlama, Llama-3.2, Mistral, Qwen2, Pythia and GPT-2),
// tokenizer/generation configs, PEFT adapter_config.json and trainer_state.json.
// Round trips through the writers, and one test per kind of bad input.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "memskew/error.h"
#include "memskew/hf-config.h"
#include "memskew/tokenizer-config.h"
#include "memskew/peft-config.h"
#include "memskew/trainer-state.h"
#include "test-util.h"

namespace fs = std::filesystem;
using namespace memskew;
using memskew::test::expect_error;

namespace {

const std::string& root() {
    static const std::string dir = memskew::test::temp_dir();
    return dir;
}

std::string write_file(const std::string& rel, const std::string& text) {
    const fs::path p = fs::path(root()) / rel;
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary | std::ios::trunc) << text;
    return p.string();
}

// TinyLlama/TinyLlama-1.1B-Chat-v1.0
const char* kTinyLlama = R"({
  "architectures": ["LlamaForCausalLM"],
  "attention_bias": false,
  "bos_token_id": 1,
  "eos_token_id": 2,
  "hidden_act": "silu",
  "hidden_size": 2048,
  "initializer_range": 0.02,
  "intermediate_size": 5632,
  "max_position_embeddings": 2048,
  "model_type": "llama",
  "num_attention_heads": 32,
  "num_hidden_layers": 22,
  "num_key_value_heads": 4,
  "pretraining_tp": 1,
  "rms_norm_eps": 1e-05,
  "rope_scaling": null,
  "rope_theta": 10000.0,
  "tie_word_embeddings": false,
  "torch_dtype": "bfloat16",
  "transformers_version": "4.35.0",
  "use_cache": true,
  "vocab_size": 32000
})";

// meta-llama/Llama-3.2-1B-Instruct
const char* kLlama32 = R"({
  "architectures": ["LlamaForCausalLM"],
  "attention_bias": false,
  "attention_dropout": 0.0,
  "bos_token_id": 128000,
  "eos_token_id": [128001, 128008, 128009],
  "head_dim": 64,
  "hidden_act": "silu",
  "hidden_size": 2048,
  "initializer_range": 0.02,
  "intermediate_size": 8192,
  "max_position_embeddings": 131072,
  "mlp_bias": false,
  "model_type": "llama",
  "num_attention_heads": 32,
  "num_hidden_layers": 16,
  "num_key_value_heads": 8,
  "pretraining_tp": 1,
  "rms_norm_eps": 1e-05,
  "rope_scaling": {
    "factor": 32.0,
    "high_freq_factor": 4.0,
    "low_freq_factor": 1.0,
    "original_max_position_embeddings": 8192,
    "rope_type": "llama3"
  },
  "rope_theta": 500000.0,
  "tie_word_embeddings": true,
  "torch_dtype": "bfloat16",
  "transformers_version": "4.45.0.dev0",
  "use_cache": true,
  "vocab_size": 128256
})";

// mistralai/Mistral-7B-v0.1
const char* kMistral = R"({
  "architectures": ["MistralForCausalLM"],
  "bos_token_id": 1,
  "eos_token_id": 2,
  "hidden_act": "silu",
  "hidden_size": 4096,
  "initializer_range": 0.02,
  "intermediate_size": 14336,
  "max_position_embeddings": 32768,
  "model_type": "mistral",
  "num_attention_heads": 32,
  "num_hidden_layers": 32,
  "num_key_value_heads": 8,
  "rms_norm_eps": 1e-05,
  "rope_theta": 10000.0,
  "sliding_window": 4096,
  "tie_word_embeddings": false,
  "torch_dtype": "bfloat16",
  "transformers_version": "4.34.0.dev0",
  "use_cache": true,
  "vocab_size": 32000
})";

// Qwen/Qwen2-0.5B
const char* kQwen2 = R"({
  "architectures": ["Qwen2ForCausalLM"],
  "attention_dropout": 0.0,
  "bos_token_id": 151643,
  "eos_token_id": 151643,
  "hidden_act": "silu",
  "hidden_size": 896,
  "initializer_range": 0.02,
  "intermediate_size": 4864,
  "max_position_embeddings": 131072,
  "max_window_layers": 24,
  "model_type": "qwen2",
  "num_attention_heads": 14,
  "num_hidden_layers": 24,
  "num_key_value_heads": 2,
  "rms_norm_eps": 1e-06,
  "rope_theta": 1000000.0,
  "sliding_window": 131072,
  "tie_word_embeddings": true,
  "torch_dtype": "bfloat16",
  "transformers_version": "4.40.1",
  "use_cache": true,
  "use_sliding_window": false,
  "vocab_size": 151936
})";

// EleutherAI/pythia-70m
const char* kPythia = R"({
  "architectures": ["GPTNeoXForCausalLM"],
  "bos_token_id": 0,
  "eos_token_id": 0,
  "hidden_act": "gelu",
  "hidden_size": 512,
  "initializer_range": 0.02,
  "intermediate_size": 2048,
  "layer_norm_eps": 1e-05,
  "max_position_embeddings": 2048,
  "model_type": "gpt_neox",
  "num_attention_heads": 8,
  "num_hidden_layers": 6,
  "rotary_emb_base": 10000,
  "rotary_pct": 0.25,
  "tie_word_embeddings": false,
  "torch_dtype": "float16",
  "transformers_version": "4.24.0",
  "use_cache": true,
  "use_parallel_residual": true,
  "vocab_size": 50304
})";

// openai-community/gpt2
const char* kGpt2 = R"({
  "activation_function": "gelu_new",
  "architectures": ["GPT2LMHeadModel"],
  "attn_pdrop": 0.1,
  "bos_token_id": 50256,
  "embd_pdrop": 0.1,
  "eos_token_id": 50256,
  "initializer_range": 0.02,
  "layer_norm_epsilon": 1e-05,
  "model_type": "gpt2",
  "n_ctx": 1024,
  "n_embd": 768,
  "n_head": 12,
  "n_layer": 12,
  "n_positions": 1024,
  "resid_pdrop": 0.1,
  "summary_activation": null,
  "summary_first_dropout": 0.1,
  "summary_proj_to_labels": true,
  "summary_type": "cls_index",
  "summary_use_proj": true,
  "task_specific_params": {"text-generation": {"do_sample": true, "max_length": 50}},
  "vocab_size": 50257
})";

void expect_same(const HfConfig& a, const HfConfig& b) {
    EXPECT_EQ(a.arch, b.arch);
    EXPECT_EQ(a.architecture, b.architecture);
    EXPECT_EQ(a.model_type, b.model_type);
    EXPECT_EQ(a.vocab_size, b.vocab_size);
    EXPECT_EQ(a.hidden_size, b.hidden_size);
    EXPECT_EQ(a.num_hidden_layers, b.num_hidden_layers);
    EXPECT_EQ(a.num_attention_heads, b.num_attention_heads);
    EXPECT_EQ(a.num_key_value_heads, b.num_key_value_heads);
    EXPECT_EQ(a.head_dim, b.head_dim);
    EXPECT_EQ(a.intermediate_size, b.intermediate_size);
    EXPECT_EQ(a.max_position_embeddings, b.max_position_embeddings);
    EXPECT_EQ(a.norm_eps, b.norm_eps);
    EXPECT_EQ(a.hidden_act, b.hidden_act);
    EXPECT_EQ(a.rope_theta, b.rope_theta);
    EXPECT_EQ(a.partial_rotary_factor, b.partial_rotary_factor);
    ASSERT_EQ(a.rope_scaling.has_value(), b.rope_scaling.has_value());
    if (a.rope_scaling) {
        EXPECT_EQ(a.rope_scaling->type, b.rope_scaling->type);
        EXPECT_EQ(a.rope_scaling->factor, b.rope_scaling->factor);
        EXPECT_EQ(a.rope_scaling->low_freq_factor, b.rope_scaling->low_freq_factor);
        EXPECT_EQ(a.rope_scaling->high_freq_factor, b.rope_scaling->high_freq_factor);
        EXPECT_EQ(a.rope_scaling->original_max_position_embeddings, b.rope_scaling->original_max_position_embeddings);
    }
    EXPECT_EQ(a.tie_word_embeddings, b.tie_word_embeddings);
    EXPECT_EQ(a.attention_bias, b.attention_bias);
    EXPECT_EQ(a.qkv_bias, b.qkv_bias);
    EXPECT_EQ(a.o_bias, b.o_bias);
    EXPECT_EQ(a.mlp_bias, b.mlp_bias);
    EXPECT_EQ(a.use_parallel_residual, b.use_parallel_residual);
    EXPECT_EQ(a.sliding_window, b.sliding_window);
    EXPECT_EQ(a.torch_dtype, b.torch_dtype);
    EXPECT_EQ(a.bos_token_ids, b.bos_token_ids);
    EXPECT_EQ(a.eos_token_ids, b.eos_token_ids);
    EXPECT_EQ(a.pad_token_id, b.pad_token_id);
}

void expect_round_trip(const HfConfig& c) {
    const std::string text = hf_config_to_json(c);
    SCOPED_TRACE(text);
    expect_same(parse_hf_config(text), c);
}

// Replaces `from` (which must occur) in a JSON text.
std::string edit(std::string json, const std::string& from, const std::string& to) {
    const size_t at = json.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    if (at != std::string::npos) json.replace(at, from.size(), to);
    return json;
}

}  // namespace

// --- config.json ------------------------------------------------------------------

TEST(HfConfig, TinyLlama) {
    const HfConfig c = parse_hf_config(kTinyLlama);
    EXPECT_EQ(c.arch, "llama");
    EXPECT_EQ(c.architecture, "LlamaForCausalLM");
    EXPECT_EQ(c.model_type, "llama");
    EXPECT_EQ(c.vocab_size, 32000);
    EXPECT_EQ(c.hidden_size, 2048);
    EXPECT_EQ(c.num_hidden_layers, 22);
    EXPECT_EQ(c.num_attention_heads, 32);
    EXPECT_EQ(c.num_key_value_heads, 4);
    EXPECT_EQ(c.head_dim, 64);
    EXPECT_EQ(c.intermediate_size, 5632);
    EXPECT_EQ(c.max_position_embeddings, 2048);
    EXPECT_DOUBLE_EQ(c.norm_eps, 1e-5);
    EXPECT_EQ(c.hidden_act, "silu");
    EXPECT_DOUBLE_EQ(c.rope_theta, 10000.0);
    EXPECT_EQ(c.rotary_dim(), 64);
    EXPECT_FALSE(c.rope_scaling.has_value());
    EXPECT_FALSE(c.tie_word_embeddings);
    EXPECT_FALSE(c.qkv_bias || c.o_bias || c.mlp_bias);
    EXPECT_EQ(c.torch_dtype, "bfloat16");
    EXPECT_EQ(c.bos_token_ids, std::vector<int64_t>{1});
    EXPECT_EQ(c.eos_token_ids, std::vector<int64_t>{2});
    EXPECT_FALSE(c.pad_token_id.has_value());
    expect_round_trip(c);
}

TEST(HfConfig, Llama32WithLlama3RopeScaling) {
    const HfConfig c = parse_hf_config(kLlama32);
    EXPECT_EQ(c.arch, "llama");
    EXPECT_EQ(c.vocab_size, 128256);
    EXPECT_EQ(c.num_hidden_layers, 16);
    EXPECT_EQ(c.num_key_value_heads, 8);
    EXPECT_EQ(c.head_dim, 64);
    EXPECT_EQ(c.max_position_embeddings, 131072);
    EXPECT_DOUBLE_EQ(c.rope_theta, 500000.0);
    ASSERT_TRUE(c.rope_scaling.has_value());
    EXPECT_EQ(c.rope_scaling->type, "llama3");
    EXPECT_DOUBLE_EQ(c.rope_scaling->factor, 32.0);
    EXPECT_DOUBLE_EQ(c.rope_scaling->low_freq_factor, 1.0);
    EXPECT_DOUBLE_EQ(c.rope_scaling->high_freq_factor, 4.0);
    EXPECT_EQ(c.rope_scaling->original_max_position_embeddings, 8192);
    EXPECT_TRUE(c.tie_word_embeddings);
    EXPECT_EQ(c.bos_token_ids, std::vector<int64_t>{128000});
    EXPECT_EQ(c.eos_token_ids, (std::vector<int64_t>{128001, 128008, 128009}));
    expect_round_trip(c);
}

TEST(HfConfig, Mistral) {
    const HfConfig c = parse_hf_config(kMistral);
    EXPECT_EQ(c.arch, "llama");  // Mistral runs as the llama family
    EXPECT_EQ(c.architecture, "MistralForCausalLM");
    EXPECT_EQ(c.hidden_size, 4096);
    EXPECT_EQ(c.intermediate_size, 14336);
    EXPECT_EQ(c.num_key_value_heads, 8);
    EXPECT_EQ(c.head_dim, 128);
    EXPECT_EQ(c.sliding_window, 4096);
    EXPECT_EQ(c.max_position_embeddings, 32768);
    EXPECT_FALSE(c.tie_word_embeddings);
    EXPECT_FALSE(c.qkv_bias);
    expect_round_trip(c);
    // sliding_window null (Mistral v0.2+) means full attention.
    EXPECT_EQ(parse_hf_config(edit(kMistral, "\"sliding_window\": 4096", "\"sliding_window\": null")).sliding_window, 0);
}

TEST(HfConfig, Qwen2HasQkvBiasAlways) {
    const HfConfig c = parse_hf_config(kQwen2);
    EXPECT_EQ(c.arch, "llama");  // Qwen2 runs as the llama family
    EXPECT_EQ(c.vocab_size, 151936);
    EXPECT_EQ(c.hidden_size, 896);
    EXPECT_EQ(c.num_attention_heads, 14);
    EXPECT_EQ(c.num_key_value_heads, 2);
    EXPECT_EQ(c.head_dim, 64);
    EXPECT_EQ(c.intermediate_size, 4864);
    EXPECT_DOUBLE_EQ(c.norm_eps, 1e-6);
    EXPECT_DOUBLE_EQ(c.rope_theta, 1e6);
    EXPECT_TRUE(c.tie_word_embeddings);
    EXPECT_TRUE(c.qkv_bias);  // no config key: Qwen2Attention always has q/k/v bias
    EXPECT_FALSE(c.o_bias);
    EXPECT_FALSE(c.mlp_bias);
    EXPECT_EQ(c.sliding_window, 0);  // use_sliding_window false
    expect_round_trip(c);
    EXPECT_EQ(parse_hf_config(edit(kQwen2, "\"use_sliding_window\": false", "\"use_sliding_window\": true")).sliding_window,
              131072);
}

TEST(HfConfig, PythiaGptNeoX) {
    const HfConfig c = parse_hf_config(kPythia);
    EXPECT_EQ(c.arch, "gptneox");
    EXPECT_EQ(c.model_type, "gpt_neox");
    EXPECT_EQ(c.vocab_size, 50304);
    EXPECT_EQ(c.hidden_size, 512);
    EXPECT_EQ(c.num_hidden_layers, 6);
    EXPECT_EQ(c.num_attention_heads, 8);
    EXPECT_EQ(c.num_key_value_heads, 8);
    EXPECT_EQ(c.head_dim, 64);
    EXPECT_EQ(c.intermediate_size, 2048);
    EXPECT_DOUBLE_EQ(c.partial_rotary_factor, 0.25);
    EXPECT_EQ(c.rotary_dim(), 16);
    EXPECT_DOUBLE_EQ(c.rope_theta, 10000.0);
    EXPECT_TRUE(c.use_parallel_residual);
    EXPECT_DOUBLE_EQ(c.norm_eps, 1e-5);
    EXPECT_EQ(c.hidden_act, "gelu");
    EXPECT_FALSE(c.tie_word_embeddings);
    EXPECT_TRUE(c.qkv_bias && c.o_bias && c.mlp_bias);
    EXPECT_EQ(c.torch_dtype, "float16");
    EXPECT_EQ(c.bos_token_ids, std::vector<int64_t>{0});
    expect_round_trip(c);
}

TEST(HfConfig, GptNeoXDefaults) {
    // GPTNeoXConfig defaults: rotary_pct 0.25, rotary_emb_base 10000,
    // use_parallel_residual true, layer_norm_eps 1e-5, hidden_act gelu.
    const HfConfig c = parse_hf_config(R"({"architectures": ["GPTNeoXForCausalLM"], "vocab_size": 100,
        "hidden_size": 64, "intermediate_size": 256, "num_hidden_layers": 2, "num_attention_heads": 4})");
    EXPECT_DOUBLE_EQ(c.partial_rotary_factor, 0.25);
    EXPECT_EQ(c.rotary_dim(), 4);
    EXPECT_DOUBLE_EQ(c.rope_theta, 10000.0);
    EXPECT_TRUE(c.use_parallel_residual);
    EXPECT_DOUBLE_EQ(c.norm_eps, 1e-5);
    EXPECT_EQ(c.hidden_act, "gelu");
    EXPECT_EQ(c.max_position_embeddings, 2048);
    EXPECT_FALSE(c.tie_word_embeddings);
    // Newer transformers spell the rotary keys differently.
    const HfConfig d = parse_hf_config(R"({"model_type": "gpt_neox", "vocab_size": 100, "hidden_size": 64,
        "intermediate_size": 256, "num_hidden_layers": 2, "num_attention_heads": 4,
        "partial_rotary_factor": 0.5, "rope_theta": 5000, "use_parallel_residual": false})");
    EXPECT_DOUBLE_EQ(d.partial_rotary_factor, 0.5);
    EXPECT_DOUBLE_EQ(d.rope_theta, 5000.0);
    EXPECT_FALSE(d.use_parallel_residual);
    expect_round_trip(d);
}

TEST(HfConfig, Gpt2) {
    const HfConfig c = parse_hf_config(kGpt2);
    EXPECT_EQ(c.arch, "gpt2");
    EXPECT_EQ(c.architecture, "GPT2LMHeadModel");
    EXPECT_EQ(c.vocab_size, 50257);
    EXPECT_EQ(c.hidden_size, 768);
    EXPECT_EQ(c.num_hidden_layers, 12);
    EXPECT_EQ(c.num_attention_heads, 12);
    EXPECT_EQ(c.num_key_value_heads, 12);
    EXPECT_EQ(c.head_dim, 64);
    EXPECT_EQ(c.intermediate_size, 3072);  // n_inner absent -> 4 * n_embd
    EXPECT_EQ(c.max_position_embeddings, 1024);
    EXPECT_DOUBLE_EQ(c.norm_eps, 1e-5);
    EXPECT_EQ(c.hidden_act, "gelu_new");
    EXPECT_TRUE(c.tie_word_embeddings);  // GPT-2's default
    EXPECT_EQ(c.rotary_dim(), 0);
    EXPECT_FALSE(c.rope_scaling.has_value());
    EXPECT_TRUE(c.qkv_bias && c.o_bias && c.mlp_bias);
    EXPECT_EQ(c.eos_token_ids, std::vector<int64_t>{50256});
    expect_round_trip(c);
    // n_inner null and an explicit value.
    const std::string with_null = edit(kGpt2, "\"n_layer\": 12,", "\"n_layer\": 12, \"n_inner\": null,");
    EXPECT_EQ(parse_hf_config(with_null).intermediate_size, 3072);
    const std::string with_inner = edit(kGpt2, "\"n_layer\": 12,", "\"n_layer\": 12, \"n_inner\": 1000,");
    EXPECT_EQ(parse_hf_config(with_inner).intermediate_size, 1000);
    expect_round_trip(parse_hf_config(with_inner));
    const std::string untied = edit(kGpt2, "\"n_layer\": 12,", "\"n_layer\": 12, \"tie_word_embeddings\": false,");
    EXPECT_FALSE(parse_hf_config(untied).tie_word_embeddings);
}

TEST(HfConfig, LlamaDefaultsAndVariants) {
    // SmolLM-style minimal config: defaults from LlamaConfig.
    const HfConfig c = parse_hf_config(R"({"architectures": ["LlamaForCausalLM"], "vocab_size": 49152,
        "hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30, "num_attention_heads": 9,
        "num_key_value_heads": 3})");
    EXPECT_EQ(c.head_dim, 64);
    EXPECT_DOUBLE_EQ(c.norm_eps, 1e-6);
    EXPECT_DOUBLE_EQ(c.rope_theta, 10000.0);
    EXPECT_EQ(c.max_position_embeddings, 2048);
    EXPECT_EQ(c.hidden_act, "silu");
    EXPECT_FALSE(c.tie_word_embeddings);
    EXPECT_TRUE(c.bos_token_ids.empty());
    // num_key_value_heads absent or null -> heads (no GQA).
    const HfConfig mha = parse_hf_config(R"({"model_type": "llama", "vocab_size": 10, "hidden_size": 64,
        "intermediate_size": 128, "num_hidden_layers": 1, "num_attention_heads": 4, "num_key_value_heads": null})");
    EXPECT_EQ(mha.num_key_value_heads, 4);
    EXPECT_EQ(mha.architecture, "LlamaForCausalLM");  // from model_type
    // attention_bias / mlp_bias, linear rope scaling, pad id, dtype key, float-typed ints.
    const HfConfig b = parse_hf_config(R"({"architectures": ["LlamaForCausalLM"], "vocab_size": 10.0,
        "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 1, "num_attention_heads": 4,
        "attention_bias": true, "mlp_bias": true, "rope_scaling": {"type": "linear", "factor": 4},
        "pad_token_id": 0, "dtype": "float32", "bos_token_id": null})");
    EXPECT_EQ(b.vocab_size, 10);
    EXPECT_TRUE(b.qkv_bias && b.o_bias && b.mlp_bias);
    ASSERT_TRUE(b.rope_scaling.has_value());
    EXPECT_EQ(b.rope_scaling->type, "linear");
    EXPECT_DOUBLE_EQ(b.rope_scaling->factor, 4.0);
    EXPECT_EQ(b.pad_token_id, 0);
    EXPECT_EQ(b.torch_dtype, "float32");
    EXPECT_TRUE(b.bos_token_ids.empty());
    expect_round_trip(b);
    // An explicit head_dim that does not equal hidden / heads.
    const HfConfig h = parse_hf_config(R"({"architectures": ["MistralForCausalLM"], "vocab_size": 10,
        "hidden_size": 60, "intermediate_size": 128, "num_hidden_layers": 1, "num_attention_heads": 4,
        "num_key_value_heads": 2, "head_dim": 32, "rope_scaling": {"rope_type": "default"}})");
    EXPECT_EQ(h.head_dim, 32);
    EXPECT_FALSE(h.rope_scaling.has_value());
    expect_round_trip(h);
}

TEST(HfConfig, LoadAndSaveFiles) {
    const std::string path = write_file("model/config.json", kQwen2);
    const HfConfig c = load_hf_config(fs::path(path).parent_path().string());
    EXPECT_EQ(c.hidden_size, 896);
    const std::string out = (fs::path(root()) / "saved-config.json").string();
    save_hf_config(c, out);
    expect_same(load_hf_config(out), c);
    expect_error<IoError>([&] { load_hf_config(root() + "/nowhere"); }, {"nowhere/config.json"});
}

TEST(HfConfigBad, UnsupportedArchitecture) {
    const std::string json = edit(kTinyLlama, "LlamaForCausalLM", "FalconForCausalLM");
    expect_error<FormatError>([&] { parse_hf_config(json); },
                              {"unsupported architecture 'FalconForCausalLM' (config.json: architectures)"});
    // The hint lists every class of every family in model/arch/.
    try {
        parse_hf_config(json);
    } catch (const FormatError& e) {
        for (const char* cls : {"LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "GPTNeoXForCausalLM",
                                "GPT2LMHeadModel"})
            EXPECT_NE(e.hint().find(cls), std::string::npos) << e.hint();
    }
    expect_error<FormatError>([&] { parse_hf_config(R"({"model_type": "falcon"})"); },
                              {"unsupported architecture 'falcon' (config.json: model_type)"});
    expect_error<FormatError>([&] { parse_hf_config(R"({"vocab_size": 3})"); },
                              {"missing required field 'architectures'"});
}

TEST(HfConfigBad, MissingRequiredFields) {
    for (const char* field : {"vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                              "num_attention_heads"}) {
        SCOPED_TRACE(field);
        const std::string json = edit(kTinyLlama, std::string("\"") + field + "\"", std::string("\"x_") + field + "\"");
        expect_error<FormatError>([&] { parse_hf_config(json, "/m/config.json"); },
                                  {"/m/config.json", std::string("missing required field '") + field + "'"});
    }
    std::string gpt2 = kGpt2;
    gpt2 = edit(gpt2, "\"n_embd\": 768,", "");
    expect_error<FormatError>([&] { parse_hf_config(gpt2); }, {"missing required field 'n_embd'"});
    const std::string llama3 = edit(kLlama32, "\"low_freq_factor\": 1.0,", "");
    expect_error<FormatError>([&] { parse_hf_config(llama3); },
                              {"missing required field 'rope_scaling.low_freq_factor'"});
}

TEST(HfConfigBad, WrongTypesAndValues) {
    expect_error<FormatError>([&] { parse_hf_config(edit(kTinyLlama, "\"hidden_size\": 2048", "\"hidden_size\": \"2048\"")); },
                              {"field 'hidden_size' is a string, expected an integer"});
    expect_error<FormatError>([&] { parse_hf_config(edit(kTinyLlama, "\"hidden_size\": 2048", "\"hidden_size\": 20.5")); },
                              {"field 'hidden_size' is a number, expected an integer"});
    expect_error<FormatError>([&] { parse_hf_config(edit(kTinyLlama, "\"tie_word_embeddings\": false", "\"tie_word_embeddings\": 0")); },
                              {"field 'tie_word_embeddings' is an integer, expected true or false"});
    expect_error<FormatError>([&] { parse_hf_config(edit(kTinyLlama, "\"eos_token_id\": 2", "\"eos_token_id\": \"</s>\"")); },
                              {"field 'eos_token_id' is a string, expected an integer or a list of integers"});
    expect_error<FormatError>([&] { parse_hf_config(edit(kTinyLlama, "\"num_key_value_heads\": 4", "\"num_key_value_heads\": 5")); },
                              {"num_attention_heads 32 is not a multiple of num_key_value_heads 5"});
    expect_error<FormatError>([&] { parse_hf_config(edit(kTinyLlama, "\"hidden_size\": 2048", "\"hidden_size\": 2050")); },
                              {"hidden_size 2050 is not a multiple of num_attention_heads 32"});
    expect_error<FormatError>([&] { parse_hf_config(edit(kTinyLlama, "\"num_hidden_layers\": 22", "\"num_hidden_layers\": 0")); },
                              {"num_hidden_layers must be positive, got 0"});
    expect_error<FormatError>([&] { parse_hf_config(edit(kTinyLlama, "\"hidden_act\": \"silu\"", "\"hidden_act\": \"mish\"")); },
                              {"unsupported activation 'mish'"});
    expect_error<FormatError>([&] { parse_hf_config(edit(kTinyLlama, "\"rope_scaling\": null", "\"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 4}")); },
                              {"unsupported rope_scaling type 'yarn'"});
    expect_error<FormatError>([&] { parse_hf_config(edit(kTinyLlama, "\"rope_scaling\": null", "\"rope_scaling\": 3")); },
                              {"field 'rope_scaling' is an integer, expected an object"});
    expect_error<FormatError>([&] { parse_hf_config(edit(kGpt2, "\"n_ctx\": 1024,", "\"scale_attn_by_inverse_layer_idx\": true,")); },
                              {"scale_attn_by_inverse_layer_idx"});
    expect_error<FormatError>([&] { parse_hf_config("{\"a\": "); }, {"config.json: not valid JSON"});
    expect_error<FormatError>([&] { parse_hf_config("[]"); }, {"holds a list, expected a JSON object"});
}

// --- tokenizer side files ------------------------------------------------------------

TEST(HfTokenizerConfig, TokensAsStringsOrObjects) {
    HfTokenizerConfig t;
    parse_hf_tokenizer_config(R"({
      "add_bos_token": true, "add_eos_token": false,
      "bos_token": {"__type": "AddedToken", "content": "<s>", "lstrip": false},
      "eos_token": "</s>", "unk_token": null, "pad_token": "<unk>",
      "tokenizer_class": "LlamaTokenizer", "model_max_length": 1000000000000000019884624838656,
      "chat_template": "{% for m in messages %}{{ m['content'] }}{% endfor %}",
      "additional_special_tokens": ["<|im_start|>", {"content": "<|im_end|>"}]
    })", t);
    EXPECT_EQ(t.bos_token, "<s>");
    EXPECT_EQ(t.eos_token, "</s>");
    EXPECT_FALSE(t.unk_token.has_value());
    EXPECT_EQ(t.pad_token, "<unk>");
    EXPECT_EQ(t.add_bos_token, true);
    EXPECT_EQ(t.add_eos_token, false);
    EXPECT_EQ(t.tokenizer_class, "LlamaTokenizer");
    EXPECT_FALSE(t.model_max_length.has_value());  // the "no limit" sentinel
    EXPECT_EQ(t.chat_template, "{% for m in messages %}{{ m['content'] }}{% endfor %}");
    EXPECT_EQ(t.additional_special_tokens, (std::vector<std::string>{"<|im_start|>", "<|im_end|>"}));

    // special_tokens_map.json wins; generation_config.json gives ids.
    parse_hf_special_tokens_map(R"({"eos_token": {"content": "<|eot_id|>"}, "unk_token": "<unk>"})", t);
    EXPECT_EQ(t.eos_token, "<|eot_id|>");
    EXPECT_EQ(t.unk_token, "<unk>");
    EXPECT_EQ(t.bos_token, "<s>");
    parse_hf_generation_config(R"({"bos_token_id": 128000, "eos_token_id": [128001, 128009], "do_sample": true,
                                   "pad_token_id": null})", t);
    EXPECT_EQ(t.bos_token_ids, std::vector<int64_t>{128000});
    EXPECT_EQ(t.eos_token_ids, (std::vector<int64_t>{128001, 128009}));
    EXPECT_FALSE(t.pad_token_id.has_value());
}

TEST(HfTokenizerConfig, NamedChatTemplates) {
    HfTokenizerConfig t;
    parse_hf_tokenizer_config(R"({"chat_template": [{"name": "default", "template": "D"},
                                                    {"name": "tool_use", "template": "T"}],
                                  "model_max_length": 4096})", t);
    EXPECT_EQ(t.chat_template, "D");
    EXPECT_EQ(t.chat_templates.at("tool_use"), "T");
    EXPECT_EQ(t.model_max_length, 4096);
}

TEST(HfTokenizerConfig, LoadsFolder) {
    const std::string dir = (fs::path(root()) / "tok").string();
    write_file("tok/tokenizer_config.json", R"({"bos_token": "<s>", "eos_token": "</s>", "add_bos_token": true,
                                               "chat_template": "old"})");
    write_file("tok/special_tokens_map.json", R"({"eos_token": "<eos>"})");
    write_file("tok/generation_config.json", R"({"eos_token_id": 7})");
    write_file("tok/chat_template.jinja", "{{ messages }}");
    const HfTokenizerConfig t = load_hf_tokenizer_config(dir);
    EXPECT_EQ(t.bos_token, "<s>");
    EXPECT_EQ(t.eos_token, "<eos>");
    EXPECT_EQ(t.eos_token_ids, std::vector<int64_t>{7});
    EXPECT_EQ(t.chat_template, "{{ messages }}");
    EXPECT_EQ(t.files_read.size(), 4u);
    // Nothing there: nothing set, no error.
    const HfTokenizerConfig none = load_hf_tokenizer_config(root() + "/empty-folder");
    EXPECT_TRUE(none.files_read.empty());
    EXPECT_FALSE(none.bos_token.has_value());
}

TEST(HfTokenizerConfig, SharedLlamaSpmFolder) {
    MEMSKEW_REQUIRE_SHARED(dir, "tokenizers/hf/llama-spm");
    const HfTokenizerConfig t = load_hf_tokenizer_config(dir);
    EXPECT_EQ(t.bos_token, "<s>");
    EXPECT_EQ(t.eos_token, "</s>");
    EXPECT_EQ(t.unk_token, "<unk>");
    EXPECT_EQ(t.pad_token, "<unk>");
    EXPECT_EQ(t.add_bos_token, true);
    EXPECT_EQ(t.add_eos_token, false);
    EXPECT_EQ(t.model_max_length, 2048);
    EXPECT_EQ(t.tokenizer_class, "LlamaTokenizer");
}

TEST(HfTokenizerConfigBad, WrongTypes) {
    HfTokenizerConfig t;
    expect_error<FormatError>([&] { parse_hf_tokenizer_config(R"({"bos_token": 1})", t); },
                              {"tokenizer_config.json: field 'bos_token' is an integer"});
    expect_error<FormatError>([&] { parse_hf_tokenizer_config(R"({"eos_token": {"lstrip": true}})", t); },
                              {"missing required field 'eos_token.content'"});
    expect_error<FormatError>([&] { parse_hf_tokenizer_config(R"({"add_bos_token": "yes"})", t); },
                              {"field 'add_bos_token' is a string, expected true or false"});
    expect_error<FormatError>([&] { parse_hf_generation_config(R"({"eos_token_id": [1, "x"]})", t); },
                              {"generation_config.json: field 'eos_token_id'"});
    const std::string dir = (fs::path(root()) / "badtok").string();
    write_file("badtok/tokenizer_config.json", "{");
    expect_error<FormatError>([&] { load_hf_tokenizer_config(dir); }, {"badtok/tokenizer_config.json: not valid JSON"});
}

// --- PEFT adapter_config.json ----------------------------------------------------------

namespace {

// What peft 0.10 writes for LoraConfig(r=16, lora_alpha=32, target_modules=["q_proj", "v_proj"]).
const char* kAdapter = R"({
  "alpha_pattern": {},
  "auto_mapping": null,
  "base_model_name_or_path": "TinyLlama/TinyLlama-1.1B-Chat-v1.0",
  "bias": "none",
  "fan_in_fan_out": false,
  "inference_mode": true,
  "init_lora_weights": true,
  "layer_replication": null,
  "layers_pattern": null,
  "layers_to_transform": null,
  "loftq_config": {},
  "lora_alpha": 32,
  "lora_dropout": 0.05,
  "megatron_config": null,
  "megatron_core": "megatron.core",
  "modules_to_save": null,
  "peft_type": "LORA",
  "r": 16,
  "rank_pattern": {},
  "revision": null,
  "target_modules": ["v_proj", "q_proj"],
  "task_type": "CAUSAL_LM",
  "use_dora": false,
  "use_rslora": false
})";

}  // namespace

TEST(PeftConfig, ParsesLoraAdapter) {
    const PeftConfig c = parse_peft_config(kAdapter);
    EXPECT_EQ(c.peft_type, "LORA");
    EXPECT_EQ(c.task_type, "CAUSAL_LM");
    EXPECT_EQ(c.base_model_name_or_path, "TinyLlama/TinyLlama-1.1B-Chat-v1.0");
    EXPECT_EQ(c.r, 16);
    EXPECT_DOUBLE_EQ(c.lora_alpha, 32.0);
    EXPECT_DOUBLE_EQ(c.lora_dropout, 0.05);
    EXPECT_EQ(c.target_modules, (std::vector<std::string>{"v_proj", "q_proj"}));
    EXPECT_TRUE(c.target_modules_regex.empty());
    EXPECT_TRUE(c.modules_to_save.empty());
    EXPECT_FALSE(c.fan_in_fan_out);
    EXPECT_EQ(c.bias, "none");
    EXPECT_FALSE(c.use_rslora);
    EXPECT_DOUBLE_EQ(c.scaling(), 2.0);
    EXPECT_TRUE(c.targets("model.layers.0.self_attn.q_proj"));
    EXPECT_TRUE(c.targets("q_proj"));
    EXPECT_FALSE(c.targets("model.layers.0.self_attn.k_proj"));
    EXPECT_FALSE(c.targets("model.layers.0.self_attn.xq_proj"));

    // Round trip through the writer.
    const PeftConfig back = parse_peft_config(peft_config_to_json(c));
    EXPECT_EQ(back.r, c.r);
    EXPECT_EQ(back.lora_alpha, c.lora_alpha);
    EXPECT_EQ(back.lora_dropout, c.lora_dropout);
    EXPECT_EQ(back.target_modules, c.target_modules);
    EXPECT_EQ(back.base_model_name_or_path, c.base_model_name_or_path);
    EXPECT_EQ(back.task_type, c.task_type);
    EXPECT_NE(peft_config_to_json(c).find("\"lora_alpha\": 32,"), std::string::npos);  // an int, as PEFT types it
}

TEST(PeftConfig, RegexRsloraPatternsAndWriter) {
    const PeftConfig c = parse_peft_config(R"js({"peft_type": "LORA", "r": 4, "lora_alpha": 8,
        "target_modules": ".*\\.(q_proj|v_proj)", "use_rslora": true, "fan_in_fan_out": true,
        "bias": "lora_only", "modules_to_save": ["lm_head"], "rank_pattern": {"q_proj": 8},
        "alpha_pattern": {"v_proj": 2.5}, "layers_to_transform": 3})js");
    EXPECT_EQ(c.target_modules_regex, ".*\\.(q_proj|v_proj)");
    EXPECT_TRUE(c.targets("model.layers.0.self_attn.q_proj"));
    EXPECT_FALSE(c.targets("q_proj"));  // full match of the whole name
    EXPECT_FALSE(c.targets("model.layers.0.self_attn.o_proj"));
    EXPECT_DOUBLE_EQ(c.scaling(), 4.0);  // 8 / sqrt(4)
    EXPECT_TRUE(c.fan_in_fan_out);
    EXPECT_EQ(c.bias, "lora_only");
    EXPECT_EQ(c.modules_to_save, std::vector<std::string>{"lm_head"});
    EXPECT_EQ(c.rank_pattern.at("q_proj"), 8);
    EXPECT_DOUBLE_EQ(c.alpha_pattern.at("v_proj"), 2.5);
    EXPECT_EQ(c.layers_to_transform, std::vector<int64_t>{3});

    const std::string path = (fs::path(root()) / "adapter_config.json").string();
    save_peft_config(c, path);
    const PeftConfig back = load_peft_config(root());
    EXPECT_EQ(back.target_modules_regex, c.target_modules_regex);
    EXPECT_TRUE(back.use_rslora);
    EXPECT_TRUE(back.fan_in_fan_out);
    EXPECT_EQ(back.bias, c.bias);
    EXPECT_EQ(back.modules_to_save, c.modules_to_save);
    EXPECT_EQ(back.rank_pattern, c.rank_pattern);
    EXPECT_EQ(back.alpha_pattern, c.alpha_pattern);
    EXPECT_EQ(back.layers_to_transform, c.layers_to_transform);

    const PeftConfig all = parse_peft_config(R"({"peft_type": "LORA", "target_modules": "all-linear"})");
    EXPECT_TRUE(all.all_linear);
    EXPECT_TRUE(all.targets("model.layers.3.mlp.down_proj"));
    EXPECT_FALSE(all.targets("lm_head"));
    EXPECT_EQ(all.r, 8);
    EXPECT_NE(peft_config_to_json(all).find("\"all-linear\""), std::string::npos);
}

TEST(PeftConfigBad, Errors) {
    expect_error<FormatError>([&] { parse_peft_config(R"({"peft_type": "IA3", "target_modules": ["k"]})"); },
                              {"unsupported peft_type 'IA3' (adapter_config.json: peft_type)"}, "LoRA");
    expect_error<FormatError>([&] { parse_peft_config(R"({"r": 8, "target_modules": ["k"]})"); },
                              {"missing required field 'peft_type'"});
    expect_error<FormatError>([&] { parse_peft_config(R"({"peft_type": "LORA"})"); },
                              {"missing required field 'target_modules'"});
    expect_error<FormatError>([&] { parse_peft_config(R"({"peft_type": "LORA", "r": 0, "target_modules": ["k"]})"); },
                              {"r must be positive"});
    expect_error<FormatError>([&] { parse_peft_config(R"({"peft_type": "LORA", "r": "8", "target_modules": ["k"]})"); },
                              {"field 'r' is a string, expected an integer"});
    expect_error<FormatError>([&] { parse_peft_config(R"({"peft_type": "LORA", "bias": "some", "target_modules": ["k"]})"); },
                              {"bias is 'some'"});
    expect_error<FormatError>([&] { parse_peft_config(R"js({"peft_type": "LORA", "target_modules": "(unclosed"})js"); },
                              {"target_modules regex '(unclosed' is invalid"});
    expect_error<FormatError>([&] { parse_peft_config(R"({"peft_type": "LORA", "target_modules": [1]})"); },
                              {"field 'target_modules' is an integer, expected a list of strings"});
    expect_error<IoError>([&] { load_peft_config(root() + "/no-adapter-here"); }, {"adapter_config.json"});
}

// --- trainer_state.json --------------------------------------------------------------------

namespace {

const char* kTrainerState = R"({
  "best_metric": null,
  "best_model_checkpoint": null,
  "epoch": 2.0,
  "eval_steps": 500,
  "global_step": 20,
  "is_hyper_param_search": false,
  "is_local_process_zero": true,
  "is_world_process_zero": true,
  "log_history": [
    {"epoch": 0.5, "grad_norm": 1.25, "learning_rate": 4.5e-05, "loss": 2.3012, "step": 5},
    {"epoch": 1.0, "grad_norm": 0.98, "learning_rate": 3.5e-05, "loss": 1.875, "step": 10},
    {"epoch": 1.0, "eval_loss": 1.9, "eval_runtime": 0.5, "eval_samples_per_second": 10.0, "step": 10},
    {"epoch": 2.0, "step": 20, "total_flos": 12345.0, "train_loss": 1.7, "train_runtime": 12.5}
  ],
  "logging_steps": 5,
  "max_steps": 20,
  "num_input_tokens_seen": 0,
  "num_train_epochs": 2,
  "save_steps": 10,
  "stateful_callbacks": {"TrainerControl": {"args": {"should_save": true}}},
  "total_flos": 12345.0,
  "train_batch_size": 4,
  "trial_name": null,
  "trial_params": null
})";

}  // namespace

TEST(TrainerState, ParsesAndRoundTrips) {
    const TrainerState s = parse_trainer_state(kTrainerState);
    EXPECT_EQ(s.global_step, 20);
    EXPECT_DOUBLE_EQ(s.epoch, 2.0);
    EXPECT_EQ(s.max_steps, 20);
    EXPECT_DOUBLE_EQ(s.num_train_epochs, 2.0);
    EXPECT_EQ(s.logging_steps, 5);
    EXPECT_EQ(s.save_steps, 10);
    EXPECT_EQ(s.train_batch_size, 4);
    EXPECT_FALSE(s.best_metric.has_value());
    EXPECT_FALSE(s.best_model_checkpoint.has_value());
    ASSERT_EQ(s.log_history.size(), 4u);
    EXPECT_DOUBLE_EQ(s.log_history[0].epoch, 0.5);
    EXPECT_EQ(s.log_history[0].step, 5);
    EXPECT_DOUBLE_EQ(*s.log_history[0].loss(), 2.3012);
    EXPECT_DOUBLE_EQ(*s.log_history[0].learning_rate(), 4.5e-5);
    EXPECT_DOUBLE_EQ(*s.log_history[0].get("grad_norm"), 1.25);
    EXPECT_FALSE(s.log_history[2].loss().has_value());
    EXPECT_DOUBLE_EQ(*s.log_history[2].get("eval_loss"), 1.9);

    TrainerState t = s;
    t.best_metric = 1.9;
    t.best_model_checkpoint = "out/checkpoint-10";
    const std::string path = (fs::path(root()) / "trainer_state.json").string();
    save_trainer_state(t, path);
    const TrainerState back = load_trainer_state(root());
    EXPECT_EQ(back.global_step, t.global_step);
    EXPECT_EQ(back.epoch, t.epoch);
    EXPECT_EQ(back.max_steps, t.max_steps);
    EXPECT_EQ(back.num_train_epochs, t.num_train_epochs);
    EXPECT_EQ(back.best_metric, t.best_metric);
    EXPECT_EQ(back.best_model_checkpoint, t.best_model_checkpoint);
    ASSERT_EQ(back.log_history.size(), t.log_history.size());
    for (size_t i = 0; i < t.log_history.size(); ++i) {
        EXPECT_EQ(back.log_history[i].epoch, t.log_history[i].epoch);
        EXPECT_EQ(back.log_history[i].step, t.log_history[i].step);
        EXPECT_EQ(back.log_history[i].values, t.log_history[i].values);
    }
    // Only keys of transformers' TrainerState dataclass.
    EXPECT_EQ(trainer_state_to_json(t).find("stateful_callbacks"), std::string::npos);
}

TEST(TrainerStateBad, Errors) {
    expect_error<FormatError>([&] { parse_trainer_state(R"({"epoch": 1.0})"); }, {"missing required field 'global_step'"});
    expect_error<FormatError>([&] { parse_trainer_state(R"({"global_step": 1, "log_history": {}})"); },
                              {"field 'log_history' is an object, expected a list of objects"});
    expect_error<FormatError>([&] { parse_trainer_state(R"({"global_step": 1, "log_history": [{"step": "x"}]})"); },
                              {"field 'log_history[0].step' is a string"});
    expect_error<IoError>([&] { load_trainer_state(root() + "/checkpoint-missing"); }, {"trainer_state.json"});
}
