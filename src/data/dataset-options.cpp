// The dataset options every dataset-reading front end shares (data.h).
#include "memskew/data.h"
#include "memskew/error.h"

namespace memskew {

namespace {

bool flag(const std::string& v) { return v == "true"; }

}  // namespace

const std::vector<DatasetOption>& dataset_options() {
    static const std::vector<DatasetOption> options = {
        {"format", false, "Record format: auto, alpaca, gpteacher, prompt-completion, qa, chat, text",
         [](DatasetParams& p, const std::string& v) {
             if (v != "auto") p.format = parse_record_format(v);
         }},
        {"template", false,
         "Prompt template: plain, alpaca, alpaca-original, chatml, llama-2, llama-3, or a string with {instruction} "
         "{input} {prompt} {system}",
         [](DatasetParams& p, const std::string& v) {
             // The template's own settings (system text, end marker) survive a later --template.
             PromptTemplate t = parse_template(v);
             t.default_system = p.prompt_template.default_system;
             t.reference_end_marker = p.prompt_template.reference_end_marker;
             p.prompt_template = t;
         }},
        {"system", false, "System text for samples that have none",
         [](DatasetParams& p, const std::string& v) { p.prompt_template.default_system = v; }},
        {"reference_end_marker", true, "Append the template's end-of-turn marker to references",
         [](DatasetParams& p, const std::string& v) { p.prompt_template.reference_end_marker = flag(v); }},
        {"prompt_field", false, "Field holding the instruction/prompt/question/text",
         [](DatasetParams& p, const std::string& v) { p.prompt_field = v; }},
        {"input_field", false, "Field holding the input (alpaca style)",
         [](DatasetParams& p, const std::string& v) { p.input_field = v; }},
        {"response_field", false, "Field holding the reference response",
         [](DatasetParams& p, const std::string& v) { p.response_field = v; }},
        {"messages_field", false, "Field holding chat messages",
         [](DatasetParams& p, const std::string& v) { p.messages_field = v; }},
        {"system_field", false, "Field holding the system text (default: system)",
         [](DatasetParams& p, const std::string& v) { p.system_field = v; }},
        {"id_field", false, "Field holding the sample id (else a content hash)",
         [](DatasetParams& p, const std::string& v) { p.id_field = v; }},
        {"skip_bad", true, "Skip (and count) malformed records instead of failing",
         [](DatasetParams& p, const std::string& v) { p.skip_bad = flag(v); }},
        {"skip_empty", true, "Skip (and count) samples with an empty prompt or reference",
         [](DatasetParams& p, const std::string& v) { p.skip_empty_reference = flag(v); }},
        {"dedupe_ids", true, "Give duplicate ids a #2, #3... suffix instead of failing",
         [](DatasetParams& p, const std::string& v) { p.dedupe_ids = flag(v); }},
    };
    return options;
}

}  // namespace memskew
