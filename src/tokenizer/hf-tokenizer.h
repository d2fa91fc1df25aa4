// Private to src/tokenizer: the tokenizer behind load_tokenizer_json, built
// from the parsed parts of a Hugging Face tokenizer.json (model BPE).
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "memskew/tokenizer.h"
#include "tokenizer/hf-components.h"

namespace memskew::detail::hf {

// Everything parsed from tokenizer.json (+ the config files beside it).
struct BpeSpec {
    // tokens (model vocab and added tokens, by id), types, special ids and
    // add_bos/add_eos. model is "gpt2" for byte-level BPE and "llama" for
    // character-level BPE (SentencePiece converted, usually with byte_fallback).
    Vocab vocab;
    std::vector<std::pair<std::string, std::string>> merges;  // model.merges in rank order
    bool byte_fallback = false;
    bool fuse_unk = false;
    bool ignore_merges = false;
    int32_t unk = -1;  // model.unk_token's id
    std::vector<AddedToken> added_tokens;
    std::unique_ptr<Normalizer> normalizer;                    // null: none
    std::vector<std::unique_ptr<PreTokenizerStage>> pre_tokenizer;  // empty: the segment is one piece
    std::unique_ptr<Decoder> decoder;                          // null: tokens joined by spaces (HF)
    bool decoder_byte_level_only = false;                      // enables the table-driven decode
};

// Throws FormatError naming the merge (model.merges[i]) when a merge refers
// to tokens missing from the vocabulary.
std::unique_ptr<Tokenizer> make_bpe_tokenizer(BpeSpec spec);

}  // namespace memskew::detail::hf
