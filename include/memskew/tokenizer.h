// Tokenizers: SentencePiece-style BPE over scores with byte fallback (GGUF
// `tokenizer.ggml.model = llama`) and byte-level BPE over merges (`gpt2`,
// with the pre-tokenizer named by `tokenizer.ggml.pre`). Hugging Face
// tokenizer.json support builds on the same classes.
//
// Token ids are int32_t throughout. encode() never adds BOS/EOS unless asked.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace memskew {

class GgufFile;

// Token attributes as GGUF's tokenizer.ggml.token_type stores them.
enum class TokenType : int32_t {
    kUndefined = 0, kNormal = 1, kUnknown = 2, kControl = 3,
    kUserDefined = 4, kUnused = 5, kByte = 6,
};

// Everything a tokenizer needs, independent of where it was read from.
struct Vocab {
    std::string model;  // "llama" (SentencePiece-style BPE) or "gpt2" (byte-level BPE)
    std::string pre = "default";  // pre-tokenizer name (gpt2 only): "default", "gpt-2", ...
    std::vector<std::string> tokens;
    std::vector<float> scores;        // may be empty (then all 0)
    std::vector<int32_t> types;       // TokenType values; may be empty (then all kNormal)
    std::vector<std::string> merges;  // "a b" pairs, rank = index (gpt2 only)
    int32_t bos = -1, eos = -1, unk = -1, pad = -1;
    bool add_bos = false;           // whether encode(add_special=true) prepends BOS
    bool add_eos = false;
    bool add_space_prefix = true;   // SentencePiece: prepend "▁" to the text
};

// Reads tokenizer.ggml.* from a GGUF file. Throws FormatError naming the key.
Vocab vocab_from_gguf(const GgufFile& gguf);

class Tokenizer {
public:
    virtual ~Tokenizer() = default;
    // Encodes raw text. With add_special, prepends BOS / appends EOS as the
    // vocabulary's add_bos / add_eos flags say.
    virtual std::vector<int32_t> encode(std::string_view text, bool add_special = false) const = 0;
    // Decodes ids back to text (control tokens such as BOS/EOS are skipped).
    virtual std::string decode(const std::vector<int32_t>& ids) const = 0;
    // The stored piece of one token, for tables (e.g. "▁the", "<0x0A>").
    const std::string& piece(int32_t id) const;
    // The text one token contributes when decoded on its own.
    std::string token_text(int32_t id) const { return decode({id}); }

    const Vocab& vocab() const { return vocab_; }
    int32_t n_vocab() const { return static_cast<int32_t>(vocab_.tokens.size()); }
    int32_t bos() const { return vocab_.bos; }
    int32_t eos() const { return vocab_.eos; }
    const std::string& kind() const { return vocab_.model; }

    // Builds the right implementation for vocab.model; throws FormatError
    // ("unsupported tokenizer model 'x'") otherwise.
    static std::unique_ptr<Tokenizer> from_vocab(Vocab vocab);

protected:
    explicit Tokenizer(Vocab vocab) : vocab_(std::move(vocab)) {}
    Vocab vocab_;
};

// Loads a tokenizer from a GGUF file (weights or vocab-only).
std::unique_ptr<Tokenizer> load_tokenizer_gguf(const std::string& path);

// Loads a Hugging Face tokenizer.json (the file, or a folder holding it) with
// a BPE model: byte-level (GPT-2, GPT-NeoX/Pythia, Falcon, MPT, Llama-3,
// Qwen2) or SentencePiece-converted with byte_fallback (Llama-2, Mistral).
// Ids match transformers' AutoTokenizer: added tokens in the text (e.g.
// "<|endoftext|>") are recognised, and encode(add_special=true) adds what the
// post_processor adds (tokenizer_config.json's add_bos_token/add_eos_token,
// when present beside the file, override it; BOS/EOS names come from there
// too). Anything not reproducible exactly throws FormatError
// "unsupported ... (tokenizer.json: <json path>)".
std::unique_ptr<Tokenizer> load_tokenizer_json(const std::string& path);

// Loads a tokenizer from a GGUF file (by its magic), a tokenizer.json, or a
// folder holding tokenizer.json.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path);

// A fingerprint of the id <-> token mapping: "xxh3:<16 hex digits>" of the
// model kind, every token's bytes in id order and the BOS/EOS/UNK/PAD ids.
// Anything that stores token ids (an n-gram guard, memskew/ngram-guard.h)
// keeps it, so ids are never read with a tokenizer that means other tokens.
// Scores and merges are left out: they change how text is split, not what an
// id stands for.
std::string tokenizer_fingerprint(const Tokenizer& tok);

// Builds a plain byte-level vocabulary: 256 byte tokens (GPT-2 byte-to-unicode
// pieces, no merges) plus <s> and </s>. Used by tiny built-in models.
Vocab make_byte_vocab();

}  // namespace memskew
