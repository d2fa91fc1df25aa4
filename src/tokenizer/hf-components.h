// The parts of a Hugging Face tokenizer.json pipeline that sit around the BPE
// model: added-token matching, normalizers, pre-tokenizer stages and
// decoders. Each follows the `tokenizers` library (Rust) step for step, so
// that ids match AutoTokenizer's; differences are documented where they are.
//
// Text domains. HF's ByteLevel pre-tokenizer maps every byte to one printable
// character (GPT-2's bytes_to_unicode) and later stages see that mapped text.
// Here pieces stay raw bytes throughout (the BPE model maps bytes to ids
// itself), and stages that run after ByteLevel read each byte as its mapped
// character ("mapped domain"). Because the mapping is one character per byte,
// a split at mapped character k is a split at raw byte k, so this is exact.
//
// Invalid UTF-8 (HF never sees it: Python strings are valid) is accepted:
// an invalid byte is a one-byte "character" that no class matches and that
// normalizers copy through unchanged, so byte-level tokenizers round-trip it.
#pragma once

#include <cstdint>
#include <list>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/pre-tokenizer.h"

namespace memskew::detail::hf {

// ---------------------------------------------------------------- added tokens

struct AddedToken {
    std::string content;
    int32_t id = -1;
    bool special = false;
    bool single_word = false;
    bool lstrip = false;
    bool rstrip = false;
    bool normalized = false;
};

// One segment of text after added-token matching: either an added token's id
// or a stretch of text (a view into the matched string) to tokenize normally.
struct Segment {
    int32_t id;  // -1: text
    std::string_view text;
};

// Finds added tokens leftmost-longest (HF's Aho-Corasick MatchKind::LeftmostLongest)
// with a byte trie; a first-byte bitmap makes the scan between candidates a
// plain byte loop. lstrip/rstrip/single_word are applied as HF does: a match
// failing single_word is dropped (not retried shorter), lstrip/rstrip swallow
// adjacent Unicode whitespace into the token.
class AddedTokenMatcher {
public:
    explicit AddedTokenMatcher(std::vector<AddedToken> tokens);
    bool empty() const { return tokens_.empty(); }
    // Appends the segments of `text` (covering it in order; text segments non-empty).
    void split(std::string_view text, std::vector<Segment>& out) const;

private:
    struct Node {
        int32_t first_child = -1;  // children form a sibling list: tries here are tiny
        int32_t next_sibling = -1;
        int32_t token = -1;  // index into tokens_ when a token ends here
        uint8_t byte = 0;
    };
    int32_t child(int32_t node, uint8_t byte) const;
    std::vector<AddedToken> tokens_;
    std::vector<Node> nodes_;
    bool first_byte_[256] = {};
};

// ---------------------------------------------------------------- normalizers

class Normalizer {
public:
    virtual ~Normalizer() = default;
    // Writes the normalized text to `out` and returns true, or returns false
    // (leaving `out` alone) when the text is unchanged: most text passes
    // through NFC and friends untouched, and this skips the copy.
    virtual bool normalize(std::string_view in, std::string& out) const = 0;
};

enum class UnicodeForm { kNfc, kNfd, kNfkc, kNfkd };
std::unique_ptr<Normalizer> make_unicode_normalizer(UnicodeForm form);
std::unique_ptr<Normalizer> make_lowercase_normalizer();
std::unique_ptr<Normalizer> make_prepend_normalizer(std::string prefix);
// pattern is a literal string, or an ICU regex when is_regex.
std::unique_ptr<Normalizer> make_replace_normalizer(const std::string& pattern, bool is_regex, std::string content);
std::unique_ptr<Normalizer> make_strip_normalizer(bool left, bool right);
std::unique_ptr<Normalizer> make_sequence_normalizer(std::vector<std::unique_ptr<Normalizer>> stages);

// ---------------------------------------------------------------- pre-tokenizer stages

// HF's SplitDelimiterBehavior.
enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

// State shared by the stages while one segment is pre-tokenized.
struct PreTokenizeState {
    // Pieces a transforming stage (ByteLevel's prefix space, Metaspace) wrote;
    // a list so that views into earlier strings stay valid (and, unlike a
    // deque, an empty one allocates nothing: most segments need none).
    std::list<std::string> storage;
    // Whether pieces are read as ByteLevel-mapped characters (see above).
    bool mapped = false;
    // Start of the piece at offset 0 of the whole input, if it is in this
    // segment (Metaspace's prepend_scheme "first").
    const char* text_start = nullptr;
};

class PreTokenizerStage {
public:
    virtual ~PreTokenizerStage() = default;
    // Replaces `pieces` by their pre-tokenization (using `scratch` as the output buffer).
    virtual void run(std::vector<std::string_view>& pieces, std::vector<std::string_view>& scratch,
                     PreTokenizeState& state) const = 0;
    // Whether this stage is ByteLevel (the model then works on bytes).
    virtual bool is_byte_level() const { return false; }
};

// A tokenizer.json regex (Oniguruma syntax, as Hugging Face tokenizers runs
// it) rewritten for ICU so its shorthand classes keep Oniguruma's meaning:
// \s / \S as \p{White_Space} / \P{White_Space}, \w / \W as Oniguruma's word
// set (with its Latin-1 extras outside brackets), \h / \H as hex digits.
// Everything else (\p{..}, \d, literals, groups) is passed through as is.
// Every regex run by this folder (Split, Replace) goes through it.
std::string oniguruma_to_icu(const std::string& pattern);

// Split with a regex (ICU, or hand-coded when the text is the GPT-2 pattern).
std::unique_ptr<PreTokenizerStage> make_split_regex_stage(const std::string& pattern, SplitBehavior behavior,
                                                          bool invert);
std::unique_ptr<PreTokenizerStage> make_split_string_stage(const std::string& literal, SplitBehavior behavior,
                                                           bool invert);
std::unique_ptr<PreTokenizerStage> make_byte_level_stage(bool add_prefix_space, bool use_regex);
std::unique_ptr<PreTokenizerStage> make_digits_stage(bool individual_digits);
std::unique_ptr<PreTokenizerStage> make_punctuation_stage(SplitBehavior behavior);
std::unique_ptr<PreTokenizerStage> make_whitespace_stage();        // \w+|[^\w\s]+
std::unique_ptr<PreTokenizerStage> make_whitespace_split_stage();  // split on White_Space, removed
std::unique_ptr<PreTokenizerStage> make_char_delimiter_stage(uint32_t delimiter);
enum class PrependScheme { kFirst, kAlways, kNever };
std::unique_ptr<PreTokenizerStage> make_metaspace_stage(std::string replacement, PrependScheme scheme, bool split);

// The Llama-3 and Qwen2 pre-tokenizer regexes (they differ in \p{N}{1,3} vs
// \p{N}), recognised by their exact text and run by a hand-coded splitter.
extern const char* const kLlama3Pattern;
extern const char* const kQwen2Pattern;
// max_digits: 3 for Llama-3, 1 for Qwen2.
std::unique_ptr<PreTokenizer> make_llama3_pre_tokenizer(int max_digits);

// ---------------------------------------------------------------- decoders

// Decoders work on the list of token strings, as in HF (decode is not hot).
class Decoder {
public:
    virtual ~Decoder() = default;
    virtual void decode(std::vector<std::string>& tokens) const = 0;
};

std::unique_ptr<Decoder> make_byte_level_decoder();
std::unique_ptr<Decoder> make_metaspace_decoder(std::string replacement, bool strip_first_space);
std::unique_ptr<Decoder> make_replace_decoder(std::string pattern, std::string content);
std::unique_ptr<Decoder> make_byte_fallback_decoder();
std::unique_ptr<Decoder> make_fuse_decoder();
std::unique_ptr<Decoder> make_strip_decoder(std::string content, size_t start, size_t stop);
std::unique_ptr<Decoder> make_sequence_decoder(std::vector<std::unique_ptr<Decoder>> stages);

// The bytes a ByteLevel-encoded token stands for (HF: a token whose
// characters are not all byte characters is kept as its own UTF-8 text).
std::string byte_level_token_bytes(std::string_view token);

}  // namespace memskew::detail::hf
