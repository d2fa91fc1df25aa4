// Prompt templates (see data.h for the exact layouts). Every template works
// on one normalized conversation: an optional system text, the turns before
// the reference, and the generation cue where the reference starts.
#include <string>
#include <vector>

#include "memskew/data.h"
#include "memskew/error.h"

namespace memskew {

namespace {

constexpr std::string_view kAlpacaPreambleInput =
    "Below is an instruction that describes a task, paired with an input that provides further "
    "context. Write a response that appropriately completes the request.\n\n";
constexpr std::string_view kAlpacaPreambleNoInput =
    "Below is an instruction that describes a task. Write a response that appropriately "
    "completes the request.\n\n";

struct TurnView {
    std::string_view role;
    std::string_view content;
};

struct Conversation {
    std::string_view system;      // "" = none
    std::vector<TurnView> turns;  // without the leading system turn
};

bool is_chat(const Sample& s) { return s.format == RecordFormat::kChat; }

// instruction + "\n" + input (LLaMA-Factory's convention for chat templates).
std::string user_message(const Sample& s) {
    std::string m = s.instruction;
    if (!s.input.empty()) {
        m += '\n';
        m += s.input;
    }
    return m;
}

Conversation conversation(const Sample& s, const PromptTemplate& t, const std::string& user) {
    Conversation c;
    c.system = s.system;
    if (is_chat(s)) {
        size_t first = 0;
        if (!s.turns.empty() && s.turns[0].role == "system") {
            c.system = s.turns[0].content;
            first = 1;
        }
        for (size_t i = first; i < s.turns.size(); ++i) c.turns.push_back({s.turns[i].role, s.turns[i].content});
    } else {
        c.turns.push_back({"user", user});
    }
    if (c.system.empty()) c.system = t.default_system;
    return c;
}

std::string render_plain(const Sample& s, const Conversation& c, const std::string& user) {
    std::string out;
    if (!c.system.empty()) {
        out += c.system;
        out += '\n';
    }
    if (!is_chat(s) && s.format == RecordFormat::kPromptCompletion) {
        out += user;  // such prompts end with their own separator
        return out;
    }
    for (const auto& turn : c.turns) {
        out += turn.content;
        out += '\n';
    }
    return out;
}

std::string render_alpaca(const Sample& s, const Conversation& c, bool original) {
    const std::string_view cue = original ? "### Response:" : "### Response:\n";
    std::string out;
    if (!is_chat(s)) {
        const bool with_input = !s.input.empty();
        if (!c.system.empty()) {
            out += c.system;
            out += "\n\n";
        } else {
            out += with_input ? kAlpacaPreambleInput : kAlpacaPreambleNoInput;
        }
        out += "### Instruction:\n";
        out += s.instruction;
        out += "\n\n";
        if (with_input) {
            out += "### Input:\n";
            out += s.input;
            out += "\n\n";
        }
        out += cue;
        return out;
    }
    if (!c.system.empty()) {
        out += c.system;
        out += "\n\n";
    } else {
        out += kAlpacaPreambleNoInput;
    }
    for (const auto& turn : c.turns) {
        if (turn.role == "assistant") {
            out += turn.content;
            out += "\n\n";
        } else {
            out += "### Instruction:\n";
            out += turn.content;
            out += "\n\n";
            out += cue;
        }
    }
    // A conversation whose last prompt turn is an assistant turn still needs
    // the cue before the reference.
    if (c.turns.empty() || c.turns.back().role == "assistant") out += cue;
    return out;
}

std::string render_chatml(const Conversation& c) {
    std::string out;
    auto turn = [&](std::string_view role, std::string_view content) {
        out += "<|im_start|>";
        out += role;
        out += '\n';
        out += content;
        out += "<|im_end|>\n";
    };
    if (!c.system.empty()) turn("system", c.system);
    for (const auto& t : c.turns) turn(t.role, t.content);
    out += "<|im_start|>assistant\n";
    return out;
}

// HF's Llama-2 chat template without the leading BOS (the tokenizer adds it)
// and without .strip() (contents stay verbatim).
std::string render_llama2(const Conversation& c) {
    std::string out;
    bool first_user = true;
    bool open = false;  // an [INST] block is open (a user turn awaits its answer)
    for (const auto& t : c.turns) {
        if (t.role == "assistant") {
            if (!open) out += "[INST]  [/INST]";  // an answer with no question before it
            out += ' ';
            out += t.content;
            out += " </s><s>";
            open = false;
            continue;
        }
        if (open) {
            // Consecutive non-assistant turns share one [INST] block.
            out.resize(out.size() - std::string_view(" [/INST]").size());
            out += '\n';
        } else {
            out += "[INST] ";
        }
        if (first_user && !c.system.empty()) {
            out += "<<SYS>>\n";
            out += c.system;
            out += "\n<</SYS>>\n\n";
        }
        first_user = false;
        out += t.content;
        out += " [/INST]";
        open = true;
    }
    if (!open) {
        // No user turn before the reference: an empty instruction keeps the layout.
        out += "[INST] ";
        if (first_user && !c.system.empty()) {
            out += "<<SYS>>\n";
            out += c.system;
            out += "\n<</SYS>>\n\n";
        }
        out += " [/INST]";
    }
    return out;
}

std::string render_llama3(const Conversation& c) {
    std::string out;
    auto turn = [&](std::string_view role, std::string_view content) {
        out += "<|start_header_id|>";
        out += role;
        out += "<|end_header_id|>\n\n";
        out += content;
        out += "<|eot_id|>";
    };
    if (!c.system.empty()) turn("system", c.system);
    for (const auto& t : c.turns) turn(t.role, t.content);
    out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
    return out;
}

enum class Placeholder { kInstruction, kInput, kPrompt, kSystem };

struct TemplatePart {
    std::string literal;
    bool is_placeholder = false;
    Placeholder placeholder = Placeholder::kPrompt;
};

// Splits a custom template into literals and placeholders; throws
// InvalidInput naming the offending position.
std::vector<TemplatePart> parse_custom(std::string_view t) {
    std::vector<TemplatePart> parts;
    std::string lit;
    for (size_t i = 0; i < t.size(); ++i) {
        const char c = t[i];
        if (c == '{' && i + 1 < t.size() && t[i + 1] == '{') {
            lit += '{';
            ++i;
        } else if (c == '}' && i + 1 < t.size() && t[i + 1] == '}') {
            lit += '}';
            ++i;
        } else if (c == '{') {
            const size_t close = t.find('}', i);
            if (close == std::string_view::npos) {
                throw InvalidInput("prompt template: '{' at position " + std::to_string(i) + " is never closed",
                                   "placeholders are {instruction}, {input}, {prompt}, {system}; write {{ for a literal brace");
            }
            const std::string_view name = t.substr(i + 1, close - i - 1);
            TemplatePart p;
            p.is_placeholder = true;
            if (name == "instruction") p.placeholder = Placeholder::kInstruction;
            else if (name == "input") p.placeholder = Placeholder::kInput;
            else if (name == "prompt") p.placeholder = Placeholder::kPrompt;
            else if (name == "system") p.placeholder = Placeholder::kSystem;
            else {
                throw InvalidInput("prompt template: unknown placeholder {" + std::string(name) + "}",
                                   "known placeholders: {instruction}, {input}, {prompt}, {system}; write {{ for a literal brace");
            }
            if (!lit.empty()) parts.push_back({std::move(lit)});
            lit.clear();
            parts.push_back(p);
            i = close;
        } else if (c == '}') {
            throw InvalidInput("prompt template: unmatched '}' at position " + std::to_string(i),
                               "write }} for a literal brace");
        } else {
            lit += c;
        }
    }
    if (!lit.empty()) parts.push_back({std::move(lit)});
    return parts;
}

std::string render_custom(const Sample& s, const PromptTemplate& t, const Conversation& c,
                          const std::string& user) {
    std::string out;
    for (const auto& p : parse_custom(t.custom)) {
        if (!p.is_placeholder) {
            out += p.literal;
            continue;
        }
        switch (p.placeholder) {
            case Placeholder::kInstruction: out += s.instruction; break;
            case Placeholder::kInput: out += s.input; break;
            case Placeholder::kPrompt: out += user; break;
            case Placeholder::kSystem: out += c.system; break;
        }
    }
    return out;
}

}  // namespace

std::string_view template_name(TemplateKind kind) {
    switch (kind) {
        case TemplateKind::kPlain: return "plain";
        case TemplateKind::kAlpaca: return "alpaca";
        case TemplateKind::kAlpacaOriginal: return "alpaca-original";
        case TemplateKind::kChatml: return "chatml";
        case TemplateKind::kLlama2: return "llama-2";
        case TemplateKind::kLlama3: return "llama-3";
        case TemplateKind::kCustom: return "custom";
    }
    return "?";
}

std::string_view end_of_turn_marker(TemplateKind kind) {
    switch (kind) {
        case TemplateKind::kChatml: return "<|im_end|>";
        case TemplateKind::kLlama2: return " </s>";
        case TemplateKind::kLlama3: return "<|eot_id|>";
        default: return "";
    }
}

PromptTemplate parse_template(std::string_view s) {
    PromptTemplate t;
    if (s.find('{') != std::string_view::npos || s.find('}') != std::string_view::npos) {
        parse_custom(s);  // validates
        t.kind = TemplateKind::kCustom;
        t.custom = std::string(s);
        return t;
    }
    for (TemplateKind k : {TemplateKind::kPlain, TemplateKind::kAlpaca, TemplateKind::kAlpacaOriginal,
                           TemplateKind::kChatml, TemplateKind::kLlama2, TemplateKind::kLlama3}) {
        if (s == template_name(k)) {
            t.kind = k;
            return t;
        }
    }
    if (s == "llama2") t.kind = TemplateKind::kLlama2;
    else if (s == "llama3") t.kind = TemplateKind::kLlama3;
    else {
        throw InvalidInput("unknown prompt template '" + std::string(s) + "'",
                           "use plain, alpaca, alpaca-original, chatml, llama-2, llama-3, or a template "
                           "string with {instruction}, {input}, {prompt}, {system}");
    }
    return t;
}

std::string render_prompt(const Sample& sample, const PromptTemplate& tmpl) {
    if (sample.format == RecordFormat::kText) return {};
    const std::string user = user_message(sample);
    const Conversation c = conversation(sample, tmpl, user);
    switch (tmpl.kind) {
        case TemplateKind::kPlain: return render_plain(sample, c, user);
        case TemplateKind::kAlpaca: return render_alpaca(sample, c, false);
        case TemplateKind::kAlpacaOriginal: return render_alpaca(sample, c, true);
        case TemplateKind::kChatml: return render_chatml(c);
        case TemplateKind::kLlama2: return render_llama2(c);
        case TemplateKind::kLlama3: return render_llama3(c);
        case TemplateKind::kCustom: return render_custom(sample, tmpl, c, user);
    }
    return {};
}

}  // namespace memskew
