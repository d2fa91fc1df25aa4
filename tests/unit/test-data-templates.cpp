// Prompt templates rendered against exact expected strings (data.h documents
// each layout).
#include <gtest/gtest.h>

#include "memskew/data.h"
#include "memskew/error.h"

using namespace memskew;

namespace {

Sample instruction_sample(std::string instruction, std::string input, std::string system = {}) {
    Sample s;
    s.format = RecordFormat::kAlpaca;
    s.instruction = std::move(instruction);
    s.input = std::move(input);
    s.system = std::move(system);
    s.reference = "R";
    return s;
}

Sample chat_sample() {
    Sample s;
    s.format = RecordFormat::kChat;
    s.turns = {{"system", "S"}, {"user", "U1"}, {"assistant", "A1"}, {"user", "U2"}};
    s.system = "S";
    s.instruction = "U2";
    s.reference = "R";
    return s;
}

std::string render(const Sample& s, const std::string& name) { return render_prompt(s, parse_template(name)); }

}  // namespace

TEST(DataTemplates, Plain) {
    EXPECT_EQ(render(instruction_sample("Add", "1 2"), "plain"), "Add\n1 2\n");
    EXPECT_EQ(render(instruction_sample("Add", ""), "plain"), "Add\n");
    EXPECT_EQ(render(instruction_sample("Add", "", "Sys"), "plain"), "Sys\nAdd\n");
    Sample pc;
    pc.format = RecordFormat::kPromptCompletion;
    pc.instruction = "Translate: cat ->";
    EXPECT_EQ(render(pc, "plain"), "Translate: cat ->");
    EXPECT_EQ(render(chat_sample(), "plain"), "S\nU1\nA1\nU2\n");
}

TEST(DataTemplates, AlpacaExact) {
    EXPECT_EQ(render(instruction_sample("Add", "1 2"), "alpaca"),
              "Below is an instruction that describes a task, paired with an input that provides further context. "
              "Write a response that appropriately completes the request.\n\n"
              "### Instruction:\nAdd\n\n### Input:\n1 2\n\n### Response:\n");
    EXPECT_EQ(render(instruction_sample("Add", ""), "alpaca"),
              "Below is an instruction that describes a task. Write a response that appropriately completes the "
              "request.\n\n### Instruction:\nAdd\n\n### Response:\n");
    // Byte-exact with tatsu-lab/stanford_alpaca train.py (no newline after "Response:").
    EXPECT_EQ(render(instruction_sample("Add", ""), "alpaca-original"),
              "Below is an instruction that describes a task. Write a response that appropriately completes the "
              "request.\n\n### Instruction:\nAdd\n\n### Response:");
    EXPECT_EQ(render(instruction_sample("Add", "", "Sys"), "alpaca"),
              "Sys\n\n### Instruction:\nAdd\n\n### Response:\n");
    EXPECT_EQ(render(chat_sample(), "alpaca"),
              "S\n\n### Instruction:\nU1\n\n### Response:\nA1\n\n### Instruction:\nU2\n\n### Response:\n");
}

TEST(DataTemplates, Chatml) {
    EXPECT_EQ(render(instruction_sample("Add", "1 2"), "chatml"),
              "<|im_start|>user\nAdd\n1 2<|im_end|>\n<|im_start|>assistant\n");
    EXPECT_EQ(render(chat_sample(), "chatml"),
              "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU1<|im_end|>\n<|im_start|>assistant\nA1<|im_end|>\n"
              "<|im_start|>user\nU2<|im_end|>\n<|im_start|>assistant\n");
    PromptTemplate t = parse_template("chatml");
    t.default_system = "You are helpful.";
    EXPECT_EQ(render_prompt(instruction_sample("Q", ""), t),
              "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n");
    // A sample's own system text wins over the default.
    EXPECT_EQ(render_prompt(instruction_sample("Q", "", "Mine"), t),
              "<|im_start|>system\nMine<|im_end|>\n<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n");
}

TEST(DataTemplates, Llama2) {
    EXPECT_EQ(render(instruction_sample("Add", "1 2"), "llama-2"), "[INST] Add\n1 2 [/INST]");
    EXPECT_EQ(render(instruction_sample("Add", "", "Sys"), "llama-2"), "[INST] <<SYS>>\nSys\n<</SYS>>\n\nAdd [/INST]");
    EXPECT_EQ(render(chat_sample(), "llama-2"), "[INST] <<SYS>>\nS\n<</SYS>>\n\nU1 [/INST] A1 </s><s>[INST] U2 [/INST]");
}

TEST(DataTemplates, Llama3) {
    EXPECT_EQ(render(instruction_sample("Add", ""), "llama-3"),
              "<|start_header_id|>user<|end_header_id|>\n\nAdd<|eot_id|>"
              "<|start_header_id|>assistant<|end_header_id|>\n\n");
    EXPECT_EQ(render(chat_sample(), "llama-3"),
              "<|start_header_id|>system<|end_header_id|>\n\nS<|eot_id|>"
              "<|start_header_id|>user<|end_header_id|>\n\nU1<|eot_id|>"
              "<|start_header_id|>assistant<|end_header_id|>\n\nA1<|eot_id|>"
              "<|start_header_id|>user<|end_header_id|>\n\nU2<|eot_id|>"
              "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

TEST(DataTemplates, Custom) {
    EXPECT_EQ(render(instruction_sample("Add", "1 2", "Sys"), "{system}: Q: {instruction}\nC: {input}\nA:"),
              "Sys: Q: Add\nC: 1 2\nA:");
    EXPECT_EQ(render(instruction_sample("Add", "1 2"), "<{prompt}> {{literal}}"), "<Add\n1 2> {literal}");
    EXPECT_EQ(render(chat_sample(), "{system}|{prompt}|{instruction}|{input}"), "S|U2|U2|");
    EXPECT_THROW(parse_template("{instruction} {response}"), InvalidInput);
    EXPECT_THROW(parse_template("{instruction"), InvalidInput);
    EXPECT_THROW(parse_template("a } b"), InvalidInput);
}

TEST(DataTemplates, NamesAndMarkers) {
    EXPECT_THROW(parse_template("vicuna"), InvalidInput);
    EXPECT_EQ(parse_template("llama2").kind, TemplateKind::kLlama2);
    EXPECT_EQ(template_name(parse_template("llama-3").kind), "llama-3");
    EXPECT_EQ(end_of_turn_marker(TemplateKind::kChatml), "<|im_end|>");
    EXPECT_EQ(end_of_turn_marker(TemplateKind::kLlama2), " </s>");
    EXPECT_EQ(end_of_turn_marker(TemplateKind::kLlama3), "<|eot_id|>");
    EXPECT_EQ(end_of_turn_marker(TemplateKind::kAlpaca), "");
    Sample text;
    text.format = RecordFormat::kText;
    text.text = "abc";
    EXPECT_EQ(render(text, "chatml"), "");
}
