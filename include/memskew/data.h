// Datasets (METHOD M1): reads JSONL, JSON arrays and CSV files of SFT samples,
// maps their fields (alpaca, GPTeacher, prompt/completion, question/answer,
// chat messages, raw text) to (prompt, reference) pairs, renders prompts with
// a template and gives every sample a stable id.
//
// This layer knows nothing about models or tokenizers: prompts are text. Raw
// text samples are split into prompt/reference later by the caller, who has
// the tokenizer (split_text_tokens below).
//
// Bad input never crashes: every problem is a FormatError / InvalidInput /
// IoError naming "file:line" (and the field), or, under the skip flags, a
// skipped record counted in LoadReport.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace memskew {

// ---------------------------------------------------------------------------
// File kinds and record formats

enum class FileKind {
    kAuto,   // by extension (.jsonl/.ndjson, .json, .csv), then by content
    kJsonl,  // one JSON object per line; blank lines skipped
    kJson,   // one JSON array of objects
    kCsv,    // RFC 4180 with a header row (quoted fields, "" escapes, CRLF, embedded newlines)
};

enum class RecordFormat {
    kAuto,              // from the fields of the first records
    kAlpaca,            // instruction, input (optional), output
    kGpteacher,         // instruction, input (optional), response
    kPromptCompletion,  // prompt, completion
    kQuestionAnswer,    // question, answer
    kChat,              // messages (role/content) or ShareGPT conversations (from/value)
    kText,              // text: the whole text, split by token counts later
};

// Names used on the command line and in reports: "auto", "jsonl", "json", "csv".
std::string_view file_kind_name(FileKind kind);
FileKind parse_file_kind(std::string_view name);  // throws InvalidInput
// "auto", "alpaca", "gpteacher", "prompt-completion", "question-answer",
// "chat", "text". parse also accepts "qa", "messages", "sharegpt".
std::string_view record_format_name(RecordFormat format);
RecordFormat parse_record_format(std::string_view name);  // throws InvalidInput

// ---------------------------------------------------------------------------
// Samples

// One chat turn. Roles are normalized: "system", "user", "assistant"
// (ShareGPT "human" -> user, "gpt"/"bot"/"model" -> assistant); other roles
// ("tool", "function", ...) are kept lower-cased.
struct ChatTurn {
    std::string role;
    std::string content;
};

struct Sample {
    size_t index = 0;  // position of the record in the file (0-based; skipped records count)
    std::string id;    // id field if present, else content hash (16 hex digits)
    bool id_from_field = false;
    size_t line = 0;   // 1-based line where the record starts
    RecordFormat format = RecordFormat::kAuto;

    std::string prompt;     // rendered with the template (empty for kText)
    std::string reference;  // the response text (+ end-of-turn marker if asked; empty for kText)

    // Raw fields, kept for reports and re-rendering. For chat: instruction is
    // the last user turn before the reference, system the leading system turn.
    // For prompt/completion and question/answer, instruction is the prompt /
    // question.
    std::string instruction;
    std::string input;
    std::string system;
    std::vector<ChatTurn> turns;  // chat only: every turn before the reference (system included)
    std::string text;             // kText only: the whole text
};

// ---------------------------------------------------------------------------
// Prompt templates
//
// Every template renders (system, user turns, earlier assistant turns) and
// ends where the reference begins. For non-chat records the single user
// message is `instruction` followed by "\n" + `input` when input is non-empty
// (LLaMA-Factory's convention); prompt/completion uses the prompt, question/
// answer the question. Contents are inserted verbatim (never stripped).
//
//  plain    Non-chat: [system "\n"] user-message "\n". prompt/completion:
//           the prompt verbatim (such prompts carry their own separator).
//           Chat: every prompt turn's content followed by "\n".
//  alpaca   Stanford Alpaca's prompts (with-input and no-input variants)
//           ending "### Response:\n", as the Alpaca README shows them and
//           Alpaca-LoRA / LLaMA-Factory train with. A system text replaces
//           the preamble sentence. Chat: preamble, then per user turn
//           "### Instruction:\n{u}\n\n### Response:\n", per assistant turn
//           "{a}\n\n".
//  alpaca-original  The same, but ending "### Response:" with no newline,
//           byte-exact with PROMPT_DICT in tatsu-lab/stanford_alpaca train.py
//           (the original Alpaca models were trained on prompt + output).
//  chatml   "<|im_start|>{role}\n{content}<|im_end|>\n" per turn, then
//           "<|im_start|>assistant\n". End-of-turn marker "<|im_end|>".
//  llama-2  "[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{user} [/INST]", earlier
//           assistant turns as " {a} </s><s>[INST] {u} [/INST]". End marker
//           " </s>". The first <s> is NOT in the text: BOS is added by the
//           tokenizer. The prompt ends at "[/INST]" without the trailing space,
//           because SentencePiece tokenizers prefix the reference with "▁".
//  llama-3  "<|start_header_id|>{role}<|end_header_id|>\n\n{content}<|eot_id|>"
//           per turn, then "<|start_header_id|>assistant<|end_header_id|>\n\n".
//           <|begin_of_text|> is NOT in the text (BOS comes from the
//           tokenizer). End marker "<|eot_id|>".
//  custom   A string with {instruction}, {input}, {prompt}, {system}
//           ({prompt} = the user message as above; "{{" / "}}" for braces).
//           For chat samples only the last user turn and the system text are
//           available; earlier turns are not rendered.
//
// Special-token texts (<|im_end|>, </s><s>, ...) must be parsed as special
// tokens by the tokenizer.
enum class TemplateKind { kPlain, kAlpaca, kAlpacaOriginal, kChatml, kLlama2, kLlama3, kCustom };

struct PromptTemplate {
    TemplateKind kind = TemplateKind::kPlain;
    std::string custom;          // the template string (kCustom only)
    std::string default_system;  // used when a sample has no system text ("" = none)
    // Append the template's end-of-turn marker to the reference (chatml,
    // llama-2, llama-3 only; others have none). Off by default: n_pre then
    // measures the response text alone.
    bool reference_end_marker = false;
};

// "plain", "alpaca", "alpaca-original", "chatml", "llama-2", "llama-3"; a string containing '{'
// is a custom template. Throws InvalidInput for unknown names and for custom
// templates with unknown placeholders or unbalanced braces.
PromptTemplate parse_template(std::string_view name_or_template);
std::string_view template_name(TemplateKind kind);
// The marker appended under reference_end_marker ("" for templates without one).
std::string_view end_of_turn_marker(TemplateKind kind);
// Renders the prompt of a sample (uses format, instruction, input, system, turns).
std::string render_prompt(const Sample& sample, const PromptTemplate& tmpl);

// ---------------------------------------------------------------------------
// Loading

struct DatasetParams {
    FileKind file_kind = FileKind::kAuto;
    RecordFormat format = RecordFormat::kAuto;
    // Field mapping; empty = the format's default name. prompt_field is the
    // instruction/prompt/question/text field, response_field the
    // output/response/completion/answer field. With format kAuto and no known
    // field set, prompt_field + response_field select prompt/completion (or
    // alpaca when input_field is also given).
    std::string prompt_field;
    std::string input_field;
    std::string response_field;
    std::string messages_field;  // default: "messages", else "conversations"
    std::string system_field;    // default: "system" (optional field)
    std::string id_field = "id";  // string or number; absent/empty/null -> content hash

    PromptTemplate prompt_template;

    // Skip (and count) malformed JSON lines, records with missing fields,
    // values of the wrong type, invalid UTF-8 and CSV rows with the wrong
    // number of fields, instead of failing. A malformed JSON array or an
    // unterminated CSV quote stays fatal: nothing after it can be located.
    bool skip_bad = false;
    // Skip (and count) records whose reference is empty or only whitespace.
    bool skip_empty_reference = false;
    // Duplicate ids are an error unless this is set; then the second and later
    // occurrences get "#2", "#3", ... appended.
    bool dedupe_ids = false;

    // Applied in this order: limit (first N usable samples; reading stops
    // there), subset (n random samples, deterministic in seed, original order
    // kept), shard (samples whose XXH3(id) % n_shards == shard_index).
    size_t limit = 0;   // 0 = all
    size_t subset = 0;  // 0 = all
    uint64_t seed = 0;
    size_t shard_index = 0;
    size_t n_shards = 1;
};

struct LoadReport {
    std::string path;
    FileKind file_kind = FileKind::kAuto;
    RecordFormat format = RecordFormat::kAuto;
    std::vector<std::string> fields;  // field names of the first records (detection input)

    size_t n_bytes = 0;
    size_t n_records = 0;  // records seen (blank lines excluded, bad records included)
    size_t n_usable = 0;   // records that became samples, before subset/shard
    size_t n_samples = 0;  // samples returned

    size_t n_malformed = 0;        // JSON syntax errors, CSV field-count mismatches
    size_t n_missing_field = 0;    // required field absent or null, no assistant turn
    size_t n_wrong_type = 0;       // e.g. a number where a string is expected
    size_t n_invalid_utf8 = 0;
    size_t n_empty_reference = 0;
    size_t n_renamed_ids = 0;      // duplicates given a suffix (dedupe_ids)
    size_t n_not_in_subset = 0;
    size_t n_other_shards = 0;
    size_t n_skipped() const {
        return n_malformed + n_missing_field + n_wrong_type + n_invalid_utf8 + n_empty_reference;
    }
    std::vector<std::string> skip_reasons;  // "file:line: reason", the first kMaxSkipReasons
    static constexpr size_t kMaxSkipReasons = 10;

    double seconds = 0.0;  // wall time of load_dataset
};

struct Dataset {
    std::vector<Sample> samples;
    LoadReport report;
};

// Reads and maps a dataset file. Throws IoError (unreadable), FormatError
// (malformed content, missing/mistyped fields, invalid UTF-8, empty
// references, duplicate ids, no usable samples) or InvalidInput (bad params).
Dataset load_dataset(const std::string& path, const DatasetParams& params = {});

// The content-hash id: XXH3-64 of the template-independent sample content
// (system, user content, input or turns, and the reference), 16 hex digits.
// Independent of the template so ids stay stable across models.
std::string content_hash_id(const Sample& sample);

// Shard of an id: XXH3-64(id) % n_shards.
size_t shard_of(std::string_view id, size_t n_shards);
// "i/n" (0 <= i < n) as (shard_index, n_shards); InvalidInput otherwise.
std::pair<size_t, size_t> parse_shard(std::string_view text);

// ---------------------------------------------------------------------------
// Raw text: fixed token-count split (the 32/32 and 50/50 protocols)

enum class ShortTextPolicy {
    kSkip,      // fewer than n_prompt + n_reference tokens: no split
    kTruncate,  // keep n_prompt prompt tokens and whatever reference remains
                // (at least min_reference tokens, else skipped)
};

struct TextSplitParams {
    size_t n_prompt = 32;
    size_t n_reference = 32;
    ShortTextPolicy short_policy = ShortTextPolicy::kSkip;
    size_t min_reference = 1;  // kTruncate only
    static TextSplitParams protocol_32_32() { return {}; }
    static TextSplitParams protocol_50_50() { return {50, 50, ShortTextPolicy::kSkip, 1}; }
};

struct TextSplit {
    std::vector<int32_t> prompt;     // first n_prompt tokens
    std::vector<int32_t> reference;  // the next n_reference (fewer when truncated)
    bool truncated = false;
};

struct TextSplitCounts {
    size_t n_full = 0;
    size_t n_truncated = 0;
    size_t n_skipped = 0;
};

// Splits the token ids of a raw text sample; tokens after n_prompt +
// n_reference are dropped. Returns nullopt when the sample is too short under
// the policy. counts, if given, is incremented. Throws InvalidInput when
// n_prompt or n_reference is 0.
std::optional<TextSplit> split_text_tokens(const std::vector<int32_t>& ids,
                                           const TextSplitParams& params = {},
                                           TextSplitCounts* counts = nullptr);

}  // namespace memskew

namespace memskew {

// A synthetic SFT dataset for the demo and tests, needing nothing from outside:
// fictional patient records and support tickets (question/answer records).
// It is built to show what memskew measures:
//   - canaries: some responses carry a unique identifier ("canary" field true);
//   - repeats: some samples occur several times (as in real scraped data);
//   - near-duplicate prompts: groups of samples whose prompts differ in one
//     word but whose responses differ (the data-ambiguous case of METHOD M9).
// Deterministic in seed. Every record has id, kind, question, answer, canary,
// copies (how many times its content occurs).
struct SyntheticParams {
    size_t n_samples = 240;
    uint64_t seed = 7;
    double canary_fraction = 0.05;
    double repeat_fraction = 0.05;   // samples that occur `repeat_copies` times
    size_t repeat_copies = 4;
    double near_duplicate_fraction = 0.15;
};
// Writes the dataset as JSONL (atomically: temp file + rename); returns the record count.
size_t write_synthetic_sft(const std::string& path, const SyntheticParams& params = {});

}  // namespace memskew

namespace memskew {

// ---------------------------------------------------------------------------
// The dataset options, declared once
//
// How records map to samples is chosen by the same options wherever a dataset
// is read: `memskew train` and `memskew probe` (--prompt-field, ...) and a
// study's [datasets.NAME] tables (prompt_field = ...). Each front end builds
// its options from this list, so a model is probed with exactly the mapping
// it was trained with, and an option added here appears everywhere.
struct DatasetOption {
    const char* key;   // "prompt_field"; the command line spells it --prompt-field
    bool is_flag;      // a boolean (a flag on the command line) rather than a text value
    const char* help;
    // Applies a value ("true"/"false" for flags) to params; InvalidInput for a bad one.
    void (*apply)(DatasetParams& params, const std::string& value);
};
const std::vector<DatasetOption>& dataset_options();

}  // namespace memskew
