// The tokenizer's Hugging Face side files: tokenizer_config.json,
// special_tokens_map.json, generation_config.json and chat_template.jinja
// (src/tokenizer/tokenizer-config.cpp). FormatError naming the file and key.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace memskew {

// Special tokens and chat template from tokenizer_config.json,
// special_tokens_map.json, generation_config.json and chat_template.jinja.
struct HfTokenizerConfig {
    // Token strings (tokenizer_config / special_tokens_map; the latter wins,
    // as in transformers). Given as "<s>" or {"content": "<s>", ...}.
    std::optional<std::string> bos_token;
    std::optional<std::string> eos_token;
    std::optional<std::string> unk_token;
    std::optional<std::string> pad_token;
    std::vector<std::string> additional_special_tokens;
    std::optional<bool> add_bos_token;  // unset: the tokenizer's own default decides
    std::optional<bool> add_eos_token;
    std::string tokenizer_class;
    std::optional<int64_t> model_max_length;  // unset when absent or the 1e30 "no limit" sentinel
    // The default chat template; named ones when the file holds a list
    // ([{"name": "default", "template": ...}, {"name": "tool_use", ...}]).
    std::string chat_template;
    std::map<std::string, std::string> chat_templates;
    // Token ids from generation_config.json (ints or lists); empty when absent.
    std::vector<int64_t> bos_token_ids;
    std::vector<int64_t> eos_token_ids;
    std::optional<int64_t> pad_token_id;
    std::vector<std::string> files_read;  // which of the side files existed
};

// Individual parsers (text in, fields merged into `out`; `source` names the file).
void parse_hf_tokenizer_config(const std::string& json, HfTokenizerConfig& out,
                               const std::string& source = "tokenizer_config.json");
void parse_hf_special_tokens_map(const std::string& json, HfTokenizerConfig& out,
                                 const std::string& source = "special_tokens_map.json");
void parse_hf_generation_config(const std::string& json, HfTokenizerConfig& out,
                                const std::string& source = "generation_config.json");
// Reads whichever of the files exist in `folder` (none is required).
HfTokenizerConfig load_hf_tokenizer_config(const std::string& folder);

}  // namespace memskew
