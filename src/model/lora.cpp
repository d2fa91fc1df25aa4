// LoRA adapters: selecting target modules as PEFT does, attaching/merging
// through LinearImpl, and reading/writing PEFT adapter folders.
#include "model/lora.h"

#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>
#include <re2/re2.h>
#include <xxhash.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "memskew/error.h"
#include "memskew/file-io.h"
#include "memskew/safetensors.h"
#include "model/model-impl.h"

namespace memskew {

namespace fs = std::filesystem;

namespace {

// Child of the network that records the attached adapter and the original
// values of the parameters it replaced. It has no parameters or buffers, so
// weight loading and saving never see it.
struct AdapterStateImpl : torch::nn::Module {
    AdapterInfo info;
    std::vector<std::pair<std::string, torch::Tensor>> backups;  // parameter name -> original value
};
constexpr const char* kStateModule = "memskew_adapter";

std::shared_ptr<AdapterStateImpl> find_state(CausalLmImpl& net) {
    const auto children = net.named_children();
    if (const auto* m = children.find(kStateModule)) return std::dynamic_pointer_cast<AdapterStateImpl>(*m);
    return nullptr;
}

bool ends_with(const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}
bool starts_with(const std::string& s, const std::string& prefix) { return s.compare(0, prefix.size(), prefix) == 0; }

// PEFT's module-name match for list entries: equal, or a "."-separated suffix.
bool names_module(const std::string& module, const std::string& entry) {
    return module == entry || ends_with(module, "." + entry);
}

bool is_lora_internal(const std::string& name) {
    return name == kStateModule || ends_with(name, ".lora_A") || ends_with(name, ".lora_B");
}

std::string prefix_key(const std::string& name) { return kPeftKeyPrefix + name; }

std::string shape_str(const std::vector<int64_t>& s) { return fmt::format("[{}]", fmt::join(s, ", ")); }

// "q_proj, k_proj, ... (e.g. model.layers.0.self_attn.q_proj)"
std::string describe_linears(const std::vector<std::pair<std::string, LinearImpl*>>& linears) {
    std::vector<std::string> leaves;
    std::set<std::string> seen;
    for (const auto& [name, _] : linears) {
        const auto dot = name.rfind('.');
        std::string leaf = dot == std::string::npos ? name : name.substr(dot + 1);
        if (seen.insert(leaf).second) leaves.push_back(std::move(leaf));
    }
    return fmt::format("the model's linear modules: {}{}", fmt::join(leaves, ", "),
                       linears.empty() ? "" : fmt::format(" (e.g. {})", linears.front().first));
}

// PEFT's layers_to_transform without layers_pattern: the layer index is the
// number in ".<name>.<index>." (re.match(r".*\.[^.]*\.(\d+)\.", key)).
bool layer_selected(const PeftConfig& cfg, const std::string& module) {
    if (cfg.layers_to_transform.empty()) return true;
    static const RE2 re(R"(^.*\.[^.]*\.(\d+)\.)");
    int64_t index = 0;
    if (!RE2::PartialMatch(module, re, &index)) return false;
    return std::find(cfg.layers_to_transform.begin(), cfg.layers_to_transform.end(), index) !=
           cfg.layers_to_transform.end();
}

// peft.utils.other.get_pattern_key over rank_pattern then alpha_pattern keys.
std::string pattern_key(const PeftConfig& cfg, const std::string& module) {
    auto matches = [&](const std::string& key) {
        if (key == module) return true;
        const RE2 re("(.*\\.)?(" + key + ")", RE2::Quiet);
        return re.ok() && RE2::FullMatch(module, re);
    };
    for (const auto& [k, _] : cfg.rank_pattern)
        if (matches(k)) return k;
    for (const auto& [k, _] : cfg.alpha_pattern)
        if (matches(k)) return k;
    return module;
}

std::vector<std::pair<std::string, std::shared_ptr<torch::nn::Module>>> modules_to_save(CausalLmImpl& net,
                                                                                        const PeftConfig& cfg) {
    std::vector<std::pair<std::string, std::shared_ptr<torch::nn::Module>>> out;
    if (cfg.modules_to_save.empty()) return out;
    for (const auto& item : net.named_modules("", /*include_self=*/false)) {
        if (is_lora_internal(item.key())) continue;
        for (const auto& entry : cfg.modules_to_save) {
            if (names_module(item.key(), entry)) {
                out.emplace_back(item.key(), item.value());
                break;
            }
        }
    }
    for (const auto& entry : cfg.modules_to_save) {
        bool found = false;
        for (const auto& m : out) found = found || names_module(m.first, entry);
        if (!found)
            throw InvalidInput(fmt::format("modules_to_save entry '{}' names no module of the model", entry),
                               "name a module such as lm_head or embed_tokens");
    }
    return out;
}

CausalLmImpl& net_of(const Model& model) { return *model_impl(model).net; }

void check_no_adapter(CausalLmImpl& net) {
    if (auto st = find_state(net)) {
        throw InvalidInput(fmt::format("the model already has an adapter attached ({})",
                                       st->info.path.empty() ? "a fresh LoRA adapter" : st->info.path),
                           "unload_adapter() first; one adapter at a time");
    }
    for (const auto& [name, lin] : linear_modules(net)) {
        if (lin->has_lora())
            throw InvalidInput(fmt::format("module '{}' already has LoRA attached", name), "unload_adapter() first");
    }
}

int64_t count_lora_elements(CausalLmImpl& net) {
    int64_t n = 0;
    for (const auto& [_, lin] : linear_modules(net))
        if (lin->has_lora()) n += lin->lora_A->weight.numel() + lin->lora_B->weight.numel();
    return n;
}

torch::Tensor tensor_from(const SafetensorsFile& f, const SafetensorsTensorInfo& info) {
    auto t = torch::empty(info.shape, torch::kFloat);
    f.read_float_into(info, t.data_ptr<float>());
    return t;
}

std::string adapter_folder(const std::string& path) {
    std::error_code ec;
    if (fs::is_regular_file(path, ec)) {
        const std::string name = fs::path(path).filename().string();
        if (name == "adapter_config.json" || name == "adapter_model.safetensors" || name == "adapter_model.bin")
            return fs::path(path).parent_path().string();
    }
    return path;
}

}  // namespace

std::vector<std::pair<std::string, LinearImpl*>> linear_modules(CausalLmImpl& net) {
    std::vector<std::pair<std::string, LinearImpl*>> out;
    for (const auto& item : net.named_modules("", /*include_self=*/false)) {
        if (auto* lin = item.value()->as<LinearImpl>()) out.emplace_back(item.key(), lin);
    }
    return out;
}

std::vector<std::pair<std::string, torch::Tensor>> trainable_parameters(CausalLmImpl& net) {
    std::vector<std::pair<std::string, torch::Tensor>> out;
    for (const auto& item : net.named_parameters())
        if (item.value().requires_grad()) out.emplace_back(item.key(), item.value());
    return out;
}

int64_t lora_rank_for(const PeftConfig& cfg, const std::string& module) {
    const auto it = cfg.rank_pattern.find(pattern_key(cfg, module));
    return it == cfg.rank_pattern.end() ? cfg.r : it->second;
}

double lora_alpha_for(const PeftConfig& cfg, const std::string& module) {
    const auto it = cfg.alpha_pattern.find(pattern_key(cfg, module));
    return it == cfg.alpha_pattern.end() ? cfg.lora_alpha : it->second;
}

std::string peft_lora_key(const std::string& module, char factor) {
    return fmt::format("{}{}.lora_{}.weight", kPeftKeyPrefix, module, factor);
}

std::vector<std::string> linear_module_names(const Model& model) {
    std::vector<std::string> out;
    for (const auto& [name, _] : linear_modules(net_of(model))) out.push_back(name);
    return out;
}

std::vector<std::string> lora_target_modules(const Model& model, const PeftConfig& cfg) {
    CausalLmImpl& net = net_of(model);
    const auto linears = linear_modules(net);
    std::set<std::string> linear_names;
    for (const auto& l : linears) linear_names.insert(l.first);
    const auto modules = net.named_modules("", /*include_self=*/false);
    if (!cfg.all_linear && cfg.target_modules_regex.empty()) {
        for (const auto& entry : cfg.target_modules) {
            bool found = false;
            for (const auto& item : modules) found = found || (!is_lora_internal(item.key()) && names_module(item.key(), entry));
            if (!found) {
                throw InvalidInput(fmt::format("LoRA target_modules entry '{}' names no module of the model", entry),
                                   describe_linears(linears));
            }
        }
    }
    std::vector<std::string> out;
    for (const auto& item : modules) {
        const std::string& name = item.key();
        if (is_lora_internal(name) || !cfg.targets(name) || !layer_selected(cfg, name)) continue;
        const bool linear = linear_names.count(name) != 0;
        if (cfg.all_linear) {
            // PEFT's all-linear leaves out the output embedding (lm_head; embed_out in GPT-NeoX).
            if (!linear || names_module(name, "embed_out")) continue;
        } else if (!linear) {
            throw InvalidInput(fmt::format("LoRA target '{}' is a {}, not a linear layer", name, item.value()->name()),
                               "memskew attaches LoRA to linear layers only; " + describe_linears(linears));
        }
        out.push_back(name);
    }
    if (out.empty()) {
        const std::string what = cfg.all_linear ? "\"all-linear\""
                                 : !cfg.target_modules_regex.empty()
                                     ? fmt::format("regex '{}'", cfg.target_modules_regex)
                                     : fmt::format("[{}]", fmt::join(cfg.target_modules, ", "));
        throw InvalidInput(fmt::format("LoRA target_modules {} selects no module of the model{}", what,
                                       cfg.layers_to_transform.empty() ? "" : " (with layers_to_transform)"),
                           describe_linears(linears));
    }
    return out;
}

AdapterInfo attach_lora(Model& model, const PeftConfig& cfg, uint64_t seed, bool trainable) {
    cfg.validate("LoRA config");
    if (cfg.use_dora) throw InvalidInput("DoRA (use_dora) is not supported", "use plain LoRA");
    CausalLmImpl& net = net_of(model);
    check_no_adapter(net);
    const auto targets = lora_target_modules(model, cfg);
    const auto to_save = modules_to_save(net, cfg);
    std::map<std::string, LinearImpl*> linears;
    for (const auto& [name, lin] : linear_modules(net)) linears[name] = lin;

    auto state = std::make_shared<AdapterStateImpl>();
    state->info.config = cfg;
    auto gen = at::detail::createCPUGenerator(seed);
    torch::NoGradGuard no_grad;
    for (const auto& name : targets) {
        LinearImpl* lin = linears.at(name);
        lin->attach_lora(lora_rank_for(cfg, name), lora_alpha_for(cfg, name), cfg.lora_dropout, cfg.use_rslora,
                         trainable);
        const double bound = 1.0 / std::sqrt(static_cast<double>(lin->in_features));
        // Drawn on the CPU from the seeded generator: the same factors on every device.
        lin->lora_A->weight.copy_(torch::empty(lin->lora_A->weight.sizes(), torch::kFloat).uniform_(-bound, bound, gen));
        state->info.lora_modules.push_back(name);
    }
    for (const auto& [mname, mod] : to_save) {
        for (const auto& p : mod->named_parameters()) {
            const std::string full = mname + "." + p.key();
            state->backups.emplace_back(full, p.value().detach().clone());
            state->info.replaced_parameters.push_back(full);
            if (trainable) p.value().set_requires_grad(true);
        }
    }
    state->info.n_lora_parameters = count_lora_elements(net);
    net.register_module(kStateModule, state);
    return state->info;
}

AdapterInfo load_adapter(Model& model, const std::string& path, const AdapterLoadParams& params) {
    const std::string folder = adapter_folder(path);
    CausalLmImpl& net = net_of(model);
    check_no_adapter(net);
    return with_context("error loading adapter " + folder, [&]() -> AdapterInfo {
        std::error_code ec;
        if (!fs::is_directory(folder, ec)) {
            throw IoError(fmt::format("cannot open adapter '{}': no such folder", folder),
                          "pass a PEFT adapter folder (adapter_config.json + adapter_model.safetensors)");
        }
        PeftConfig cfg = load_peft_config(folder);
        if (cfg.use_dora) {
            throw FormatError("DoRA adapters (adapter_config.json: use_dora) are not supported",
                              "memskew loads plain LoRA adapters");
        }
        const std::string weights = (fs::path(folder) / "adapter_model.safetensors").string();
        if (!fs::exists(weights, ec)) {
            if (fs::exists(fs::path(folder) / "adapter_model.bin", ec)) {
                throw FormatError("adapter_model.bin (a pickle file) is not supported",
                                  "re-save the adapter with save_pretrained(..., safe_serialization=True)");
            }
            throw IoError(fmt::format("cannot open '{}': no such file", weights),
                          "a PEFT adapter folder holds adapter_model.safetensors");
        }
        auto st = SafetensorsFile::open(weights);
        const std::string prefix = kPeftKeyPrefix;
        const std::string base_hint =
            cfg.base_model_name_or_path.empty()
                ? std::string("check --model against the model the adapter was trained on")
                : fmt::format("adapter_config.json says the base model is '{}'", cfg.base_model_name_or_path);

        std::map<std::string, LinearImpl*> linears;
        for (const auto& [name, lin] : linear_modules(net)) linears[name] = lin;
        std::set<std::string> module_names;
        for (const auto& item : net.named_modules("", false)) module_names.insert(item.key());
        std::map<std::string, torch::Tensor> params_by_name;
        for (const auto& item : net.named_parameters()) params_by_name[item.key()] = item.value();

        struct Pair {
            const SafetensorsTensorInfo* a = nullptr;
            const SafetensorsTensorInfo* b = nullptr;
        };
        std::map<std::string, Pair> factors;  // module -> its A and B
        std::vector<std::pair<std::string, const SafetensorsTensorInfo*>> full;  // parameter -> tensor
        auto missing_module = [&](const std::string& key, const std::string& module) {
            return FormatError(fmt::format("adapter tensor '{}' names module '{}' that the model does not have — "
                                           "is this adapter for another base model?",
                                           key, module),
                               base_hint);
        };
        for (const auto& info : st->tensors()) {
            const std::string& key = info.name;
            if (!starts_with(key, prefix)) {
                throw FormatError(fmt::format("adapter tensor '{}' does not start with '{}'", key, prefix),
                                  "expected keys as PEFT's save_pretrained writes them");
            }
            const std::string rest = key.substr(prefix.size());
            const size_t pos = rest.rfind(".lora_");
            if (pos == std::string::npos) {
                // A full tensor (modules_to_save, or a bias with bias != "none").
                if (!params_by_name.count(rest)) {
                    const auto dot = rest.rfind('.');
                    throw missing_module(key, dot == std::string::npos ? rest : rest.substr(0, dot));
                }
                full.emplace_back(rest, &info);
                continue;
            }
            const std::string module = rest.substr(0, pos);
            const std::string tail = rest.substr(pos + 1);  // lora_A.weight, or lora_A.<adapter>.weight
            const auto first_dot = tail.find('.');
            const std::string kind = tail.substr(0, first_dot);
            if (kind == "lora_embedding_A" || kind == "lora_embedding_B")
                throw FormatError(fmt::format("adapter tensor '{}': LoRA on embeddings is not supported", key));
            if (kind == "lora_magnitude_vector")
                throw FormatError(fmt::format("adapter tensor '{}': DoRA adapters are not supported", key));
            const bool is_weight = ends_with(tail, ".weight") && std::count(tail.begin(), tail.end(), '.') <= 2;
            if ((kind != "lora_A" && kind != "lora_B") || !is_weight) {
                throw FormatError(fmt::format("adapter tensor '{}' is not a LoRA factor memskew understands", key),
                                  "expected <module>.lora_A.weight and <module>.lora_B.weight (no lora_bias)");
            }
            if (!module_names.count(module)) throw missing_module(key, module);
            if (!linears.count(module)) {
                throw FormatError(fmt::format("adapter tensor '{}' wraps module '{}', which is not a linear layer",
                                              key, module),
                                  "memskew attaches LoRA to linear layers only");
            }
            Pair& p = factors[module];
            (kind == "lora_A" ? p.a : p.b) = &info;
        }
        if (factors.empty()) {
            throw FormatError(fmt::format("{} holds no LoRA factors (*.lora_A.weight / *.lora_B.weight)", weights));
        }
        for (const auto& [module, p] : factors) {
            if (!p.a || !p.b) {
                throw FormatError(fmt::format("module '{}' has a {} but no {}", module,
                                              p.a ? peft_lora_key(module, 'A') : peft_lora_key(module, 'B'),
                                              p.a ? "lora_B.weight" : "lora_A.weight"));
            }
            const LinearImpl* lin = linears.at(module);
            const int64_t r = lora_rank_for(cfg, module);
            const std::vector<int64_t> want_a{r, lin->in_features}, want_b{lin->out_features, r};
            for (const auto& [info, want, role] :
                 {std::tuple{p.a, want_a, "in_features"}, std::tuple{p.b, want_b, "out_features"}}) {
                if (info->shape == want) continue;
                const bool rank_differs = info->shape.size() == 2 &&
                                          (role == std::string("in_features") ? info->shape[0] != r
                                                                              : info->shape[1] != r);
                throw FormatError(
                    fmt::format("adapter tensor '{}' has shape {} but module '{}' expects {} (r = {} from "
                                "adapter_config.json{}, {} = {})",
                                info->name, shape_str(info->shape), module, shape_str(want), r,
                                cfg.rank_pattern.empty() ? "" : " / rank_pattern", role,
                                role == std::string("in_features") ? lin->in_features : lin->out_features),
                    rank_differs ? "adapter_config.json's r does not match the tensors: is the config from another "
                                   "adapter?"
                                 : "is this adapter for another base model? " + base_hint);
            }
        }
        for (const auto& [name, info] : full) {
            const auto want = params_by_name.at(name).sizes().vec();
            if (info->shape != want) {
                throw FormatError(fmt::format("adapter tensor '{}' has shape {} but the model's '{}' has {} — is this "
                                              "adapter for another base model?",
                                              info->name, shape_str(info->shape), name, shape_str(want)),
                                  base_hint);
            }
        }
        // Read everything before touching the model, so a bad file leaves it as it was.
        std::map<std::string, std::pair<torch::Tensor, torch::Tensor>> values;
        for (const auto& [module, p] : factors) values[module] = {tensor_from(*st, *p.a), tensor_from(*st, *p.b)};
        std::vector<std::pair<std::string, torch::Tensor>> replacements;
        for (const auto& [name, info] : full) replacements.emplace_back(name, tensor_from(*st, *info));

        auto state = std::make_shared<AdapterStateImpl>();
        state->info.path = folder;
        state->info.fingerprint = adapter_fingerprint(folder);
        state->info.config = cfg;
        torch::NoGradGuard no_grad;
        for (const auto& [module, ab] : values) {
            LinearImpl* lin = linears.at(module);
            lin->attach_lora(ab.first.size(0), lora_alpha_for(cfg, module), cfg.lora_dropout, cfg.use_rslora,
                             params.trainable);
            lin->lora_A->weight.copy_(ab.first);
            lin->lora_B->weight.copy_(ab.second);
        }
        for (const auto& [name, lin] : linear_modules(net))
            if (lin->has_lora()) state->info.lora_modules.push_back(name);
        for (auto& [name, value] : replacements) {
            torch::Tensor p = params_by_name.at(name);
            state->backups.emplace_back(name, p.detach().clone());
            p.copy_(value.to(p.scalar_type()));
            if (params.trainable) p.set_requires_grad(true);
            state->info.replaced_parameters.push_back(name);
        }
        state->info.n_lora_parameters = count_lora_elements(net);
        net.register_module(kStateModule, state);
        return state->info;
    });
}

void unload_adapter(Model& model) {
    CausalLmImpl& net = net_of(model);
    auto state = find_state(net);
    if (state) {
        std::map<std::string, torch::Tensor> params_by_name;
        for (const auto& item : net.named_parameters()) params_by_name[item.key()] = item.value();
        torch::NoGradGuard no_grad;
        for (const auto& [name, value] : state->backups) {
            torch::Tensor p = params_by_name.at(name);
            p.copy_(value);
            p.set_requires_grad(false);
        }
    }
    for (const auto& [_, lin] : linear_modules(net)) lin->detach_lora();
    if (state) net.unregister_module(kStateModule);
}

void merge_adapter(Model& model) {
    CausalLmImpl& net = net_of(model);
    for (const auto& [_, lin] : linear_modules(net)) lin->merge_lora();
    if (find_state(net)) net.unregister_module(kStateModule);
    for (auto& p : net.parameters()) p.set_requires_grad(false);
}

std::optional<AdapterInfo> attached_adapter(const Model& model) {
    if (auto st = find_state(net_of(model))) return st->info;
    return std::nullopt;
}

void save_adapter(const Model& model, const std::string& folder, const PeftConfig& cfg) {
    CausalLmImpl& net = net_of(model);
    with_context("error saving adapter " + folder, [&] {
        cfg.validate("LoRA config");
        std::vector<std::pair<std::string, LinearImpl*>> wrapped;
        for (const auto& l : linear_modules(net))
            if (l.second->has_lora()) wrapped.push_back(l);
        if (wrapped.empty()) throw InvalidInput("the model has no LoRA attached", "attach_lora() or load_adapter() first");
        const auto selected = lora_target_modules(model, cfg);
        const std::set<std::string> selected_set(selected.begin(), selected.end());
        SafetensorsWriter w;
        w.set_metadata("format", "pt");
        auto put = [&](const std::string& key, const torch::Tensor& t) {
            auto f = t.detach().to(torch::kCPU, torch::kFloat).contiguous();
            w.add_tensor(key, f.sizes().vec(), f.data_ptr<float>());
        };
        for (const auto& [name, lin] : wrapped) {
            if (!selected_set.count(name)) {
                throw InvalidInput(fmt::format("module '{}' has LoRA but the config's target_modules do not select it",
                                               name),
                                   "PEFT would drop its factors when loading; fix target_modules");
            }
            const int64_t r = lora_rank_for(cfg, name);
            const double alpha = lora_alpha_for(cfg, name);
            if (lin->lora_rank != r || std::fabs(lin->lora_alpha - alpha) > 1e-9 * std::max(1.0, std::fabs(alpha))) {
                throw InvalidInput(fmt::format("module '{}' has LoRA r = {}, alpha = {} but the config gives r = {}, "
                                               "alpha = {}",
                                               name, lin->lora_rank, lin->lora_alpha, r, alpha),
                                   "save with the config the adapter was attached with");
            }
            put(peft_lora_key(name, 'A'), lin->lora_A->weight);
            put(peft_lora_key(name, 'B'), lin->lora_B->weight);
        }
        std::set<std::string> written;
        for (const auto& [mname, mod] : modules_to_save(net, cfg)) {
            for (const auto& p : mod->named_parameters()) {
                if (ends_with(p.key(), "lora_A.weight") || ends_with(p.key(), "lora_B.weight")) continue;
                const std::string full = mname + "." + p.key();
                if (written.insert(full).second) put(prefix_key(full), p.value());
            }
        }
        if (cfg.bias != "none") {
            std::set<std::string> wrapped_names;
            for (const auto& l : wrapped) wrapped_names.insert(l.first);
            for (const auto& item : net.named_parameters()) {
                const std::string& name = item.key();
                if (!ends_with(name, ".bias")) continue;
                if (cfg.bias == "lora_only" && !wrapped_names.count(name.substr(0, name.size() - 5))) continue;
                if (written.insert(name).second) put(prefix_key(name), item.value());
            }
        }
        std::error_code ec;
        fs::create_directories(folder, ec);
        if (ec) throw IoError(fmt::format("cannot create folder '{}': {}", folder, ec.message()));
        w.write((fs::path(folder) / "adapter_model.safetensors").string());
        save_peft_config(cfg, (fs::path(folder) / "adapter_config.json").string());
    });
}

std::string adapter_fingerprint(const std::string& path) {
    const std::string folder = adapter_folder(path);
    return file_content_hash({(fs::path(folder) / "adapter_config.json").string(),
                              (fs::path(folder) / "adapter_model.safetensors").string()});
}

}  // namespace memskew
