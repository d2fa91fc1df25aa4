// Pre-tokenizers: split text into the pieces that byte-level BPE encodes
// independently (merges never cross a piece boundary).
//
// A pre-tokenizer is looked up by the name GGUF stores in tokenizer.ggml.pre
// (or built from a Hugging Face tokenizer.json regex). The well-known regexes
// have hand-coded splitters, because RE2 lacks the lookahead they use and a
// hand-coded scan is several times faster than a regex engine; arbitrary
// patterns go through ICU's regex engine, which supports lookahead and \p{..}.
//
// Contract: pieces are views into the input text, in order, non-empty, and
// together cover the text exactly (text that no pattern matches becomes its
// own piece, like Hugging Face's Split with behavior "Isolated"). Any byte
// string is accepted; invalid UTF-8 bytes count as "other" characters.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace memskew {

class PreTokenizer {
public:
    virtual ~PreTokenizer() = default;
    // Appends the pieces of `text` to `pieces` (views into `text`).
    virtual void split(std::string_view text, std::vector<std::string_view>& pieces) const = 0;
    // Convenience for tests: the pieces as strings.
    std::vector<std::string> split_to_strings(std::string_view text) const;
};

// The pre-tokenizer GGUF's tokenizer.ggml.pre names. "default" and "gpt-2" are
// the GPT-2 regex. Throws FormatError "unsupported pre-tokenizer 'x'
// (tokenizer.ggml.pre)" for other names.
std::unique_ptr<PreTokenizer> make_pre_tokenizer(const std::string& name);

// The GPT-2 regex, hand-coded:
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
std::unique_ptr<PreTokenizer> make_gpt2_pre_tokenizer();

// Any ICU regex (lookahead, \p{..}, case-insensitive groups (?i:...)). Matches
// and the gaps between them become pieces. Throws FormatError naming the
// pattern if ICU rejects it.
std::unique_ptr<PreTokenizer> make_regex_pre_tokenizer(const std::string& pattern);

// Applies several pre-tokenizers in turn, each to every piece of the
// previous one (Hugging Face's Sequence of Split pre-tokenizers).
std::unique_ptr<PreTokenizer> make_sequence_pre_tokenizer(
    std::vector<std::unique_ptr<PreTokenizer>> stages);

// The GPT-2 regex as text, for tests comparing the hand-coded splitter with
// the generic ICU path.
extern const char* const kGpt2Pattern;

}  // namespace memskew
