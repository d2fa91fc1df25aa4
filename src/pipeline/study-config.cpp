// The study's TOML config: parse_study_config() and load_study_config()
// (include/memskew/study.h, docs/study.md). Every error names the file, the
// key and a hint.
#include "memskew/study.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <toml++/toml.h>

#include "memskew/error.h"
#include "memskew/file-io.h"

namespace memskew {

namespace fs = std::filesystem;

namespace {

// ---------------------------------------------------------------------------
// Config parsing

// Reads typed values from one TOML table, naming "file: key 'a.b'" in errors.
class Reader {
public:
    Reader(const std::string& file, const toml::table& table, std::string prefix)
        : file_(file), table_(table), prefix_(std::move(prefix)) {}

    std::string key(const std::string& k) const { return prefix_.empty() ? k : prefix_ + "." + k; }
    [[noreturn]] void fail(const std::string& k, const std::string& what, const std::string& hint = {}) const {
        throw InvalidInput(fmt::format("{}: key '{}': {}", file_, key(k), what), hint);
    }
    bool has(const std::string& k) const { return table_.contains(k); }
    const toml::node* node(const std::string& k) const { return table_.get(k); }

    void allow(std::initializer_list<const char*> keys) const { allow(std::vector<std::string>(keys.begin(), keys.end())); }
    void allow(const std::vector<std::string>& keys) const {
        std::set<std::string> ok(keys.begin(), keys.end());
        for (const auto& [k, v] : table_) {
            const std::string name(k.str());
            if (!ok.count(name)) {
                std::string list;
                for (const auto& o : ok) list += (list.empty() ? "" : ", ") + o;
                throw InvalidInput(fmt::format("{}: unknown key '{}'", file_, key(name)),
                                   fmt::format("keys allowed here: {}", list));
            }
        }
    }

    std::optional<std::string> str(const std::string& k) const {
        const toml::node* n = node(k);
        if (!n) return std::nullopt;
        if (!n->is_string()) fail(k, "must be a string");
        return n->value<std::string>();
    }
    std::string str(const std::string& k, const std::string& dflt) const { return str(k).value_or(dflt); }
    std::string req_str(const std::string& k, const std::string& hint) const {
        if (!has(k)) fail(k, "missing", hint);
        return *str(k);
    }
    std::optional<int64_t> integer(const std::string& k, int64_t min = INT64_MIN) const {
        const toml::node* n = node(k);
        if (!n) return std::nullopt;
        if (!n->is_integer()) fail(k, "must be an integer");
        const int64_t v = *n->value<int64_t>();
        if (v < min) fail(k, fmt::format("must be at least {}, got {}", min, v));
        return v;
    }
    std::optional<double> number(const std::string& k, double min = -1e300) const {
        const toml::node* n = node(k);
        if (!n) return std::nullopt;
        if (!n->is_number()) fail(k, "must be a number");
        const double v = *n->value<double>();
        if (!(v >= min)) fail(k, fmt::format("must be at least {}, got {}", min, v));
        return v;
    }
    std::optional<bool> boolean(const std::string& k) const {
        const toml::node* n = node(k);
        if (!n) return std::nullopt;
        if (!n->is_boolean()) fail(k, "must be true or false");
        return n->value<bool>();
    }
    const toml::table* table(const std::string& k) const {
        const toml::node* n = node(k);
        if (!n) return nullptr;
        if (!n->is_table()) fail(k, "must be a table");
        return n->as_table();
    }
    const toml::array* array(const std::string& k) const {
        const toml::node* n = node(k);
        if (!n) return nullptr;
        if (!n->is_array()) fail(k, "must be an array");
        return n->as_array();
    }
    // Runs fn, turning a library InvalidInput ("unknown template 'x'") into one naming the key.
    template <typename Fn>
    auto parse(const std::string& k, Fn&& fn) const -> decltype(fn()) {
        try {
            return fn();
        } catch (const InvalidInput& e) {
            fail(k, e.message(), e.hint());
        }
    }

private:
    const std::string& file_;
    const toml::table& table_;
    std::string prefix_;
};

std::string resolve(const std::string& base_dir, const std::string& p) {
    if (p.empty()) return p;
    fs::path path(p);
    if (path.is_absolute()) return path.lexically_normal().string();
    return (fs::path(base_dir) / path).lexically_normal().string();
}

// [train] keys, applied over `t` (so an arm's `train` table overrides the study's).
void read_train(const Reader& r, TrainParams& t) {
    r.allow({"mode", "epochs", "batch_size", "grad_accum", "lr", "weight_decay", "warmup_steps", "schedule",
             "max_grad_norm", "max_reference_tokens", "seed", "append_eos", "lora", "goldfish_k", "goldfish_h"});
    if (auto v = r.str("mode")) {
        if (*v == "lora") t.mode = TrainMode::kLora;
        else if (*v == "full") t.mode = TrainMode::kFull;
        else r.fail("mode", fmt::format("unknown mode '{}'", *v), "use lora or full");
    }
    if (auto v = r.integer("epochs", 1)) t.epochs = *v;
    if (auto v = r.integer("batch_size", 1)) t.batch_size = *v;
    if (auto v = r.integer("grad_accum", 1)) t.grad_accum = *v;
    if (auto v = r.number("lr", 0)) {
        if (*v <= 0) r.fail("lr", "must be positive");
        t.lr = *v;
    }
    if (auto v = r.number("weight_decay", 0)) t.weight_decay = *v;
    if (auto v = r.integer("warmup_steps", 0)) t.warmup_steps = *v;
    if (auto v = r.str("schedule")) t.schedule = r.parse("schedule", [&] { return parse_lr_schedule(*v); });
    if (auto v = r.number("max_grad_norm", 0)) t.max_grad_norm = *v;
    if (auto v = r.integer("max_reference_tokens", 0)) t.max_reference_tokens = *v;
    if (auto v = r.integer("seed", 0)) t.seed = static_cast<uint64_t>(*v);
    if (auto v = r.boolean("append_eos")) t.append_eos = *v;
    // Goldfish loss (METHOD M12): 0 is off; the trainer checks the values.
    if (auto v = r.integer("goldfish_k", 0)) {
        if (*v == 1) r.fail("goldfish_k", "must be at least 2 (or 0: off)", "k = 4 drops one token in four");
        t.goldfish_k = *v;
    }
    if (auto v = r.integer("goldfish_h", 1)) t.goldfish_h = *v;
}

void read_lora(const std::string& file, const toml::table& lt, const std::string& prefix, PeftConfig& c) {
    Reader l(file, lt, prefix);
    l.allow({"r", "alpha", "dropout", "targets", "rslora"});
    if (auto v = l.integer("r", 1)) c.r = *v;
    if (auto v = l.number("alpha", 0)) c.lora_alpha = *v;
    if (auto v = l.number("dropout", 0)) {
        if (*v >= 1) l.fail("dropout", "must be below 1");
        c.lora_dropout = *v;
    }
    if (auto v = l.boolean("rslora")) c.use_rslora = *v;
    if (const toml::node* n = l.node("targets")) {
        c.target_modules.clear();
        c.all_linear = false;
        if (n->is_string()) {
            const std::string s = *n->value<std::string>();
            if (s == "all-linear") c.all_linear = true;
            else c.target_modules = {s};
        } else if (n->is_array()) {
            for (const auto& e : *n->as_array()) {
                if (!e.is_string()) l.fail("targets", "must be a list of module names or \"all-linear\"");
                c.target_modules.push_back(*e.value<std::string>());
            }
            if (c.target_modules.empty()) l.fail("targets", "is empty", "e.g. [\"q_proj\", \"v_proj\"] or \"all-linear\"");
        } else {
            l.fail("targets", "must be a list of module names or \"all-linear\"");
        }
    }
}

void read_train_all(const std::string& file, const toml::table& tt, const std::string& prefix, TrainParams& t) {
    Reader r(file, tt, prefix);
    read_train(r, t);
    if (const toml::table* lt = r.table("lora")) read_lora(file, *lt, r.key("lora"), t.lora);
}

bool valid_arm_name(const std::string& name) {
    static const std::regex re("[A-Za-z0-9._-]+");
    return std::regex_match(name, re) && name != "." && name != "..";
}

}  // namespace

StudyConfig parse_study_config(const std::string& toml_text, const std::string& source_path) {
    const std::string& file = source_path;
    toml::table root;
    try {
        root = toml::parse(toml_text, source_path);
    } catch (const toml::parse_error& e) {
        throw FormatError(fmt::format("{}:{}:{}: TOML syntax error: {}", source_path, e.source().begin.line,
                                      e.source().begin.column, std::string(e.description())),
                          "see docs/study.md for the config format");
    }
    StudyConfig c;
    c.config_path = source_path;
    const std::string base_dir = fs::path(source_path).parent_path().string();
    Reader top(file, root, "");
    top.allow({"study", "model", "datasets", "train", "probe", "arms", "sizes", "compare"});

    // [study]
    uint64_t default_seed = 42;
    if (const toml::table* st = top.table("study")) {
        Reader r(file, *st, "study");
        r.allow({"name", "out", "seed", "held_out"});
        c.name = r.str("name", c.name);
        if (auto v = r.str("out")) c.out_dir = resolve(base_dir, *v);
        if (auto v = r.integer("seed", 0)) default_seed = static_cast<uint64_t>(*v);
        if (auto v = r.integer("held_out", 0)) c.held_out = *v;
    }
    c.data_seed = default_seed;

    // [model]
    const toml::table* mt = top.table("model");
    if (!mt) top.fail("model", "missing", "add [model] with path = \"model.gguf\" or init = \"dim=64,layers=2,heads=4\"");
    {
        Reader r(file, *mt, "model");
        r.allow({"path", "init", "dtype", "threads", "device"});
        if (auto v = r.str("path")) c.model_path = resolve(base_dir, *v);
        if (auto v = r.str("init")) c.init = *v;
        if (c.model_path.empty() == c.init.empty())
            r.fail("path", "give exactly one of model.path and model.init",
                   "path = \"model.gguf\" (a GGUF file or Hugging Face folder) or init = \"dim=64,layers=2,heads=4\"");
        if (auto v = r.str("dtype")) c.load.dtype = r.parse("dtype", [&] { return parse_dtype(*v); });
        if (auto v = r.integer("threads", 0)) c.load.n_threads = static_cast<int>(*v);
        if (auto v = r.str("device")) c.load.device = r.parse("device", [&] { return parse_device(*v); });
    }

    // [datasets.<name>]
    const toml::table* dt = top.table("datasets");
    if (!dt || dt->empty())
        top.fail("datasets", "missing", "add [datasets.NAME] tables with path = \"data.jsonl\"");
    std::vector<std::string> dataset_keys{"path"};
    for (const DatasetOption& o : dataset_options()) dataset_keys.push_back(o.key);
    for (const auto& [k, v] : *dt) {
        StudyDataset d;
        d.name = std::string(k.str());
        const std::string prefix = "datasets." + d.name;
        if (!valid_arm_name(d.name)) top.fail(prefix, "dataset names use letters, digits, '.', '_' and '-'");
        if (!v.is_table()) top.fail(prefix, "must be a table", "[datasets.NAME] with path = \"data.jsonl\"");
        Reader r(file, *v.as_table(), prefix);
        r.allow(dataset_keys);
        d.path = resolve(base_dir, r.req_str("path", "the dataset file (JSONL, JSON array or CSV)"));
        DatasetParams& p = d.params;
        p.skip_empty_reference = true;  // a study's default (docs/study.md)
        for (const DatasetOption& o : dataset_options()) {
            if (o.is_flag) {
                if (auto b = r.boolean(o.key)) o.apply(p, *b ? "true" : "false");
            } else if (auto v = r.str(o.key)) {
                r.parse(o.key, [&] { o.apply(p, *v); });
            }
        }
        c.datasets.push_back(std::move(d));
    }
    auto has_dataset = [&](const std::string& n) {
        return std::any_of(c.datasets.begin(), c.datasets.end(), [&](const StudyDataset& d) { return d.name == n; });
    };
    std::string dataset_names;
    for (const auto& d : c.datasets) dataset_names += (dataset_names.empty() ? "" : ", ") + d.name;

    // [train]: the defaults of every arm.
    TrainParams train;
    train.seed = default_seed;
    train.lora.r = 8;
    train.lora.lora_alpha = 16;
    train.lora.target_modules = {"q_proj", "k_proj", "v_proj", "o_proj"};
    if (!c.init.empty()) train.mode = TrainMode::kFull;
    if (const toml::table* tt = top.table("train")) read_train_all(file, *tt, "train", train);

    // [[arms]]
    auto add_arm = [&](StudyArm arm, const std::string& key) {
        for (const auto& a : c.arms)
            if (a.name == arm.name)
                throw InvalidInput(fmt::format("{}: key '{}.name': arm '{}' is declared twice", file, key, arm.name),
                                   "give every arm its own name");
        c.arms.push_back(std::move(arm));
    };
    const toml::array* arms = top.array("arms");
    if (arms) {
        for (size_t i = 0; i < arms->size(); ++i) {
            const std::string prefix = fmt::format("arms[{}]", i);
            const toml::node& an = *arms->get(i);
            if (!an.is_table()) top.fail(prefix, "must be a table", "use [[arms]] blocks");
            Reader r(file, *an.as_table(), prefix);
            r.allow({"name", "data", "train", "seeds", "probe"});
            StudyArm arm;
            arm.name = r.req_str("name", "every arm needs a name, e.g. name = \"base\"");
            if (!valid_arm_name(arm.name)) r.fail("name", "use letters, digits, '.', '_' and '-' only");
            const toml::array* data = r.array("data");
            if (!data) r.fail("data", "missing", "data = [{ dataset = \"NAME\", n = 1000 }]");
            if (data->empty()) r.fail("data", "is empty", "data = [{ dataset = \"NAME\", n = 1000 }]");
            for (size_t j = 0; j < data->size(); ++j) {
                const std::string sk = fmt::format("{}.data[{}]", prefix, j);
                const toml::node& sn = *data->get(j);
                if (!sn.is_table()) top.fail(sk, "must be a table", "{ dataset = \"NAME\", n = 1000 }");
                Reader s(file, *sn.as_table(), sk);
                s.allow({"dataset", "n"});
                StudySource src;
                src.key = sk;
                src.dataset = s.req_str("dataset", "the name of a [datasets.NAME] table");
                if (!has_dataset(src.dataset))
                    s.fail("dataset", fmt::format("unknown dataset '{}'", src.dataset),
                           fmt::format("declared datasets: {}", dataset_names));
                for (const auto& o : arm.sources)
                    if (o.dataset == src.dataset) s.fail("dataset", fmt::format("dataset '{}' is used twice in this arm", src.dataset));
                src.n = s.integer("n", 0).value_or(0);
                arm.sources.push_back(src);
            }
            arm.train = train;
            if (const toml::table* tt = r.table("train")) read_train_all(file, *tt, prefix + ".train", arm.train);
            if (const toml::table* pt = r.table("probe")) {
                // The decoding guard (METHOD M12), built from the arm's own training set.
                Reader g(file, *pt, prefix + ".probe");
                g.allow({"guard_n"});
                if (auto v = g.integer("guard_n", 2)) arm.guard_n = *v;
            }
            if (const toml::array* seeds = r.array("seeds")) {
                if (seeds->empty()) r.fail("seeds", "is empty");
                for (const auto& sn : *seeds) {
                    if (!sn.is_integer() || *sn.value<int64_t>() < 0) r.fail("seeds", "must be a list of non-negative integers");
                    StudyArm a = arm;
                    a.train.seed = static_cast<uint64_t>(*sn.value<int64_t>());
                    a.name = fmt::format("{}-s{}", arm.name, a.train.seed);
                    add_arm(std::move(a), prefix);
                }
            } else {
                add_arm(std::move(arm), prefix);
            }
        }
    }

    // [sizes]: nested subsets of one dataset, arms "<dataset>-<n>" (an arm of
    // exactly that dataset and size, declared above, stands in for its point).
    if (const toml::table* st = top.table("sizes")) {
        Reader r(file, *st, "sizes");
        r.allow({"dataset", "n", "train"});
        const std::string ds = r.req_str("dataset", "the dataset whose nested subsets train the size arms");
        if (!has_dataset(ds)) r.fail("dataset", fmt::format("unknown dataset '{}'", ds), fmt::format("declared datasets: {}", dataset_names));
        const toml::array* ns = r.array("n");
        if (!ns || ns->empty()) r.fail("n", "missing", "n = [250, 500, 1000]");
        TrainParams t = train;
        if (const toml::table* tt = r.table("train")) read_train_all(file, *tt, "sizes.train", t);
        for (size_t j = 0; j < ns->size(); ++j) {
            const toml::node& nn = *ns->get(j);
            if (!nn.is_integer() || *nn.value<int64_t>() < 1) r.fail("n", "must be a list of positive integers");
            const int64_t n = *nn.value<int64_t>();
            const bool covered = std::any_of(c.arms.begin(), c.arms.end(), [&](const StudyArm& a) {
                return a.sources.size() == 1 && a.sources[0].dataset == ds && a.sources[0].n == n;
            });
            if (covered) continue;
            StudyArm arm;
            arm.name = fmt::format("{}-{}", ds, n);
            arm.sources.push_back({ds, n, fmt::format("sizes.n[{}]", j)});
            arm.train = t;
            add_arm(std::move(arm), "sizes");
        }
    }
    if (c.arms.empty()) top.fail("arms", "missing", "add [[arms]] blocks (name, data = [{ dataset = \"NAME\", n = 1000 }])");

    // [[compare]]
    if (const toml::array* cmp = top.array("compare")) {
        for (size_t i = 0; i < cmp->size(); ++i) {
            const std::string prefix = fmt::format("compare[{}]", i);
            const toml::node& cn = *cmp->get(i);
            if (!cn.is_table()) top.fail(prefix, "must be a table", "[[compare]] with a = \"base\", b = \"mix\"");
            Reader r(file, *cn.as_table(), prefix);
            r.allow({"a", "b"});
            StudyComparison sc{r.req_str("a", "the first arm"), r.req_str("b", "the second arm")};
            for (const char* k : {"a", "b"}) {
                const std::string& n = std::string(k) == "a" ? sc.a : sc.b;
                if (std::none_of(c.arms.begin(), c.arms.end(), [&](const StudyArm& a) { return a.name == n; }))
                    r.fail(k, fmt::format("unknown arm '{}'", n));
            }
            c.comparisons.push_back(sc);
        }
    } else {
        // Derived: a mixture arm against the arm of its first source alone (same n, same seed).
        for (const auto& b : c.arms) {
            if (b.sources.size() < 2) continue;
            for (const auto& a : c.arms) {
                if (a.sources.size() == 1 && a.sources[0].dataset == b.sources[0].dataset &&
                    a.sources[0].n == b.sources[0].n && a.train.seed == b.train.seed) {
                    c.comparisons.push_back({a.name, b.name});
                    break;
                }
            }
        }
    }

    // [probe]
    ProbeParams& p = c.probe;
    p.max_reference_tokens = -1;  // -1: the arm's training cap
    if (const toml::table* pt = top.table("probe")) {
        Reader r(file, *pt, "probe");
        r.allow({"max_reference_tokens", "batch_tokens", "batch_size", "temperature", "top_k", "top_p", "tries",
                 "min_k", "k_extractable", "generate", "store_text", "truncate"});
        if (auto v = r.integer("max_reference_tokens", 0)) p.max_reference_tokens = *v;
        if (auto v = r.integer("batch_tokens", 1)) p.token_budget = *v;
        if (auto v = r.integer("batch_size", 1)) p.max_batch_size = *v;
        if (auto v = r.number("temperature", 0)) {
            if (*v <= 0) r.fail("temperature", "must be positive");
            p.sampling.temperature = *v;
        }
        if (auto v = r.integer("top_k", 0)) p.sampling.top_k = *v;
        if (auto v = r.number("top_p", 0)) {
            if (*v > 1) r.fail("top_p", "must be in (0, 1]");
            p.sampling.top_p = *v;
        }
        if (auto v = r.number("tries", 1)) p.metrics.n_tries = *v;
        if (auto v = r.number("min_k", 0)) {
            if (*v > 1) r.fail("min_k", "must be in [0, 1]");
            p.metrics.min_k = *v;
        }
        if (auto v = r.integer("k_extractable", 1)) p.metrics.k_extractable = *v;
        if (auto v = r.boolean("generate")) p.generate = *v;
        if (auto v = r.boolean("store_text")) p.store_text = *v;
        if (auto v = r.str("truncate")) p.truncate = r.parse("truncate", [&] { return parse_truncate_policy(*v); });
    }
    p.load = c.load;
    return c;
}

StudyConfig load_study_config(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw IoError(fmt::format("cannot read study config '{}'", path), "check the path");
    std::stringstream ss;
    ss << in.rdbuf();
    return parse_study_config(ss.str(), path);
}

}  // namespace memskew
