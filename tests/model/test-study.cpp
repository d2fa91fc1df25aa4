// `memskew study` (issue 6): a tiny study end to end (from-scratch model,
// synthetic data, a base arm and a mixture arm, 2 epochs), the store and the
// report it leaves, re-running skips everything, and config errors name the key.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>

#include "memskew/data.h"
#include "memskew/error.h"
#include "memskew/file-io.h"
#include "memskew/store.h"
#include "memskew/study.h"
#include "test-util.h"

using namespace memskew;
namespace fs = std::filesystem;

namespace {

void write(const std::string& path, const std::string& text) {
    std::ofstream out(path, std::ios::binary);
    out << text;
}

// A tiny study in `dir`: datasets A (40 synthetic samples) and B (20 others).
std::string tiny_config(const std::string& dir, const std::string& arms) {
    SyntheticParams a;
    a.n_samples = 40;
    a.seed = 3;
    write_synthetic_sft(dir + "/a.jsonl", a);
    SyntheticParams b;
    b.n_samples = 20;
    b.seed = 9;
    write_synthetic_sft(dir + "/b.jsonl", b);
    return R"(
[study]
name = "tiny"
seed = 5

[model]
init = "dim=32,layers=1,heads=2,ffn=64,ctx=256"

[datasets.A]
path = "a.jsonl"
format = "question-answer"

[datasets.B]
path = "b.jsonl"

[train]
epochs = 2
batch_size = 8
lr = 3e-3
max_reference_tokens = 16
schedule = "constant"

[probe]
batch_tokens = 4096
)" + arms;
}

const char* kArms = R"(
[[arms]]
name = "base"
data = [{ dataset = "A", n = 30 }]

[[arms]]
name = "mix"
data = [{ dataset = "A", n = 30 }, { dataset = "B", n = 10 }]
)";

StudyConfig parse(const std::string& dir, const std::string& text) {
    const std::string path = dir + "/study.toml";
    write(path, text);
    return load_study_config(path);
}

template <typename E, typename Fn>
std::string error_of(Fn&& fn) {
    try {
        fn();
    } catch (const E& e) {
        return e.message() + " | hint: " + e.hint();
    }
    ADD_FAILURE() << "no error thrown";
    return {};
}

}  // namespace

TEST(Study, TinyStudyEndToEndAndResume) {
    const std::string dir = test::temp_dir();
    const StudyConfig config = parse(dir, tiny_config(dir, kArms));
    ASSERT_EQ(config.arms.size(), 2u);
    ASSERT_EQ(config.comparisons.size(), 1u);  // derived: base vs mix
    EXPECT_EQ(config.comparisons[0].a, "base");
    EXPECT_EQ(config.comparisons[0].b, "mix");
    EXPECT_EQ(config.arms[0].train.mode, TrainMode::kFull);  // init trains the whole model

    StudyParams params;
    params.out_dir = dir + "/out";
    const auto t0 = std::chrono::steady_clock::now();
    const StudySummary s = run_study(config, params);
    const double first_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

    ASSERT_EQ(s.arms.size(), 2u);
    for (const auto& a : s.arms) {
        EXPECT_TRUE(a.trained_now) << a.name;
        EXPECT_EQ(a.runs_probed, 2) << a.name;
        ASSERT_EQ(a.points.size(), 2u) << a.name;
        EXPECT_EQ(a.points[0].epoch, 1);
        EXPECT_EQ(a.points[1].epoch, 2);
        EXPECT_GT(a.points[0].step, 0);
        EXPECT_EQ(a.points[1].step, 2 * a.points[0].step);
        for (const auto& p : a.points) {
            EXPECT_TRUE(std::isfinite(p.train_loss)) << a.name;
            EXPECT_GT(p.train_loss, 0.0);
            EXPECT_TRUE(std::isfinite(p.max_n_pre));
        }
    }
    EXPECT_EQ(s.arms[0].n_train_samples, 30);
    EXPECT_EQ(s.arms[1].n_train_samples, 40);
    EXPECT_EQ(s.arms[0].points[0].step, 4);  // ceil(30 / 8)
    EXPECT_EQ(s.arms[1].points[0].step, 5);  // ceil(40 / 8)
    EXPECT_TRUE(fs::exists(dir + "/out/arms/base/train.jsonl"));
    EXPECT_TRUE(fs::exists(dir + "/out/arms/mix/checkpoint-10/trainer_state.json"));

    // The store: one run per (arm, checkpoint) with step, epoch, loss and the arm's label.
    std::vector<RunInfo> runs;
    std::map<std::string, std::set<std::string>> ids;
    {
        const ResultReader reader = ResultReader::open(dir + "/out/study.db");
        runs = reader.runs();
        ASSERT_EQ(runs.size(), 4u);
        std::map<std::string, int> per_arm;
        for (const auto& r : runs) {
            const std::string label = r.spec.options.value("run_label", "");
            per_arm[label]++;
            EXPECT_EQ(r.status, RunStatus::kDone);
            ASSERT_TRUE(r.spec.checkpoint_step);
            ASSERT_TRUE(r.spec.checkpoint_epoch);
            ASSERT_TRUE(r.spec.train_loss);
            EXPECT_EQ(r.n_samples, label == "base" ? 30 : 40);
            const RunColumns cols = reader.load_columns(r.run_id);
            for (const auto& id : cols.sample_id) ids[label].insert(id);
        }
        EXPECT_EQ(per_arm["base"], 2);
        EXPECT_EQ(per_arm["mix"], 2);
    }
    // Ids are prefixed with the source; the base arm's samples are in the mixture under the same ids.
    for (const auto& id : ids["base"]) {
        EXPECT_EQ(id.rfind("A/", 0), 0u) << id;
        EXPECT_TRUE(ids["mix"].count(id)) << id;
    }
    int from_b = 0;
    for (const auto& id : ids["mix"]) from_b += id.rfind("B/", 0) == 0;
    EXPECT_EQ(from_b, 10);

    // The composition test: one per epoch, on the 30 shared samples.
    // Its figures against the store, paired by hand here: the means over the
    // shared ids and the count of non-zero differences the test ranks.
    ASSERT_EQ(s.comparisons.size(), 2u);
    {
        const ResultReader reader = ResultReader::open(dir + "/out/study.db");
        for (const auto& c : s.comparisons) {
            EXPECT_EQ(c.n_shared, 30);
            std::map<std::string, int64_t> a_npre, b_npre;
            for (const auto& r : runs) {
                if (r.spec.checkpoint_epoch != c.epoch) continue;
                const std::string label = r.spec.options.value("run_label", "");
                const RunColumns cols = reader.load_columns(r.run_id);
                for (size_t i = 0; i < cols.size(); ++i) (label == c.a ? a_npre : b_npre)[cols.sample_id[i]] = cols.n_pre[i];
            }
            double sum_a = 0, sum_b = 0;
            int64_t shared = 0, non_zero = 0;
            for (const auto& [id, va] : a_npre) {
                const auto it = b_npre.find(id);
                if (it == b_npre.end()) continue;
                ++shared;
                sum_a += static_cast<double>(va);
                sum_b += static_cast<double>(it->second);
                non_zero += it->second != va;
            }
            ASSERT_EQ(shared, 30);
            EXPECT_NEAR(c.mean_a, sum_a / 30, 1e-12);
            EXPECT_NEAR(c.mean_b, sum_b / 30, 1e-12);
            EXPECT_NEAR(c.mean_difference, (sum_b - sum_a) / 30, 1e-12);
            if (non_zero == 0) {
                EXPECT_FALSE(c.wilcoxon);
                EXPECT_NE(c.skipped.find("equal"), std::string::npos) << c.skipped;
            } else {
                ASSERT_TRUE(c.wilcoxon) << c.skipped;
                EXPECT_EQ(static_cast<int64_t>(c.wilcoxon->n), non_zero);
                EXPECT_GE(c.wilcoxon->p_value, 0.0);
                EXPECT_LE(c.wilcoxon->p_value, 1.0);
            }
        }
    }

    // The report and the JSON.
    ASSERT_TRUE(fs::exists(s.report_path));
    const std::string html = test::read_file(s.report_path);
    EXPECT_NE(html.find("chart-study-tail"), std::string::npos);
    EXPECT_NE(html.find("chart-study-loss"), std::string::npos);
    EXPECT_NE(html.find("table-composition"), std::string::npos);
    EXPECT_NE(html.find("mix"), std::string::npos);
    const auto j = nlohmann::json::parse(test::read_file(s.json_path));
    EXPECT_EQ(j["arms"].size(), 2u);
    EXPECT_EQ(j["comparisons"].size(), 2u);

    // Re-running skips everything and leaves the store as it was.
    const auto t1 = std::chrono::steady_clock::now();
    const StudySummary again = run_study(config, params);
    const double second_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
    for (const auto& a : again.arms) {
        EXPECT_FALSE(a.trained_now) << a.name;
        EXPECT_EQ(a.runs_probed, 0) << a.name;
        EXPECT_EQ(a.runs_skipped, 2) << a.name;
        ASSERT_EQ(a.points.size(), 2u);
    }
    // Skipping is checked on what ran, not on timing (machines are shared).
    std::printf("[ info ] first run %.1f s, re-run %.1f s\n", first_s, second_s);
    const ResultReader reader = ResultReader::open(dir + "/out/study.db");
    const auto runs2 = reader.runs();
    ASSERT_EQ(runs2.size(), runs.size());
    for (size_t i = 0; i < runs.size(); ++i) {
        EXPECT_EQ(runs2[i].run_key, runs[i].run_key);
        EXPECT_EQ(runs2[i].n_samples, runs[i].n_samples);
        EXPECT_EQ(runs2[i].finished_at, runs[i].finished_at);
    }
    EXPECT_EQ(again.arms[1].points[1].max_n_pre, s.arms[1].points[1].max_n_pre);

    // Changing an arm's settings after it trained is refused.
    StudyConfig changed = config;
    changed.arms[0].train.lr = 1e-2;
    const std::string msg = error_of<InvalidInput>([&] { run_study(changed, params); });
    EXPECT_NE(msg.find("arm 'base'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("other settings"), std::string::npos) << msg;
}

TEST(Study, ConfigErrorsNameTheKey) {
    const std::string dir = test::temp_dir();
    const std::string good = tiny_config(dir, kArms);
    auto config_error = [&](const std::string& text) {
        return error_of<InvalidInput>([&] { parse(dir, text); });
    };
    // Missing key.
    {
        const std::string m = config_error(tiny_config(dir, "[[arms]]\nname = \"base\"\n"));
        EXPECT_NE(m.find("study.toml"), std::string::npos) << m;
        EXPECT_NE(m.find("arms[0].data"), std::string::npos) << m;
        EXPECT_NE(m.find("missing"), std::string::npos) << m;
    }
    {
        std::string text = good;
        text.replace(text.find("path = \"a.jsonl\""), 16, "");
        const std::string m = config_error(text);
        EXPECT_NE(m.find("datasets.A.path"), std::string::npos) << m;
    }
    {
        std::string text = good;
        text.replace(text.find("[model]"), 7, "[modelx]");
        const std::string m = config_error(text);
        EXPECT_NE(m.find("modelx"), std::string::npos) << m;  // unknown key, before the missing [model]
    }
    // Unknown dataset name in an arm.
    {
        const std::string m = config_error(tiny_config(dir, std::string(kArms) + R"(
[[arms]]
name = "other"
data = [{ dataset = "nope", n = 5 }]
)"));
        EXPECT_NE(m.find("arms[2].data[0].dataset"), std::string::npos) << m;
        EXPECT_NE(m.find("unknown dataset 'nope'"), std::string::npos) << m;
        EXPECT_NE(m.find("A, B"), std::string::npos) << m;  // the hint lists the declared ones
    }
    // Wrong type, unknown key, bad value.
    EXPECT_NE(config_error(good + "\n[sizes]\ndataset = \"A\"\nn = \"ten\"\n").find("sizes.n"), std::string::npos);
    {
        std::string text = good;
        text.replace(text.find("epochs = 2"), 10, "epochz = 2");
        const std::string m = config_error(text);
        EXPECT_NE(m.find("unknown key 'train.epochz'"), std::string::npos) << m;
    }
    {
        std::string text = good;
        text.replace(text.find("schedule = \"constant\""), 21, "schedule = \"wavy\"");
        const std::string m = config_error(text);
        EXPECT_NE(m.find("train.schedule"), std::string::npos) << m;
    }
    // Duplicate arm names.
    EXPECT_NE(config_error(good + "\n[[arms]]\nname = \"mix\"\ndata = [{ dataset = \"B\" }]\n").find("declared twice"),
              std::string::npos);
    // TOML syntax.
    const std::string syntax = error_of<FormatError>([&] { parse(dir, good + "\n[train\n"); });
    EXPECT_NE(syntax.find("study.toml:"), std::string::npos) << syntax;
    // A mixture larger than the dataset: found when the study loads the data, before training.
    {
        std::string arms = kArms;
        arms.replace(arms.find("dataset = \"B\", n = 10"), 21, "dataset = \"B\", n = 200");
        const StudyConfig c = parse(dir, tiny_config(dir, arms));
        StudyParams p;
        p.out_dir = dir + "/out-big";
        const std::string m = error_of<InvalidInput>([&] { run_study(c, p); });
        EXPECT_NE(m.find("arms[1].data[1].n"), std::string::npos) << m;
        EXPECT_NE(m.find("asks for 200 samples of dataset 'B', which has 20"), std::string::npos) << m;
        EXPECT_FALSE(fs::exists(dir + "/out-big/arms/base/checkpoint-4"));
    }
    // [sizes] expands into nested arms; an existing arm of that size stands in.
    {
        const StudyConfig c = parse(dir, good + "\n[sizes]\ndataset = \"A\"\nn = [10, 20, 30]\n");
        std::vector<std::string> names;
        for (const auto& a : c.arms) names.push_back(a.name);
        EXPECT_EQ(names, (std::vector<std::string>{"base", "mix", "A-10", "A-20"}));
    }
}

// A study's [datasets.NAME] takes every dataset option train and probe take,
// with the same meaning: the parsed params equal the ones the CLI's list
// builds from the same values (the options come from one list, data.h).
TEST(Study, DatasetTablesTakeTheSharedDatasetOptions) {
    const std::string dir = test::temp_dir();
    std::string table = "[datasets.A]\npath = \"a.jsonl\"\n";
    DatasetParams expected;
    expected.skip_empty_reference = true;  // the study's default, before the options apply
    for (const DatasetOption& o : dataset_options()) {
        std::string value;
        if (o.is_flag) value = std::string(o.key) == "skip_empty" ? "false" : "true";
        else if (std::string(o.key) == "format") value = "question-answer";
        else if (std::string(o.key) == "template") value = "chatml";
        else value = std::string("v_") + o.key;
        table += std::string(o.key) + " = " + (o.is_flag ? value : "\"" + value + "\"") + "\n";
        o.apply(expected, value);
    }
    std::string text = tiny_config(dir, kArms);
    const size_t a = text.find("[datasets.A]"), b = text.find("[datasets.B]");
    text.replace(a, b - a, table + "\n");
    const StudyConfig c = parse(dir, text);
    const DatasetParams& got = c.datasets.at(0).params;
    EXPECT_EQ(got.format, RecordFormat::kQuestionAnswer);
    EXPECT_EQ(got.prompt_template.kind, TemplateKind::kChatml);
    EXPECT_EQ(got.prompt_template.default_system, "v_system");
    EXPECT_TRUE(got.prompt_template.reference_end_marker);
    EXPECT_EQ(got.prompt_field, "v_prompt_field");
    EXPECT_EQ(got.input_field, "v_input_field");
    EXPECT_EQ(got.response_field, "v_response_field");
    EXPECT_EQ(got.messages_field, "v_messages_field");
    EXPECT_EQ(got.system_field, "v_system_field");
    EXPECT_EQ(got.id_field, "v_id_field");
    EXPECT_TRUE(got.skip_bad);
    EXPECT_FALSE(got.skip_empty_reference);
    EXPECT_TRUE(got.dedupe_ids);
    // And what the list's own apply() gives for the same values.
    EXPECT_EQ(got.prompt_field, expected.prompt_field);
    EXPECT_EQ(got.prompt_template.kind, expected.prompt_template.kind);
    EXPECT_EQ(got.skip_empty_reference, expected.skip_empty_reference);
}

// Issue 13: arms that apply a mitigation (Goldfish loss in training, the
// decoding guard in probing) and the held-out split, end to end on a tiny
// study; the page and study.json set them side by side.
TEST(Study, MitigationArmsAndHeldOut) {
    const std::string dir = test::temp_dir();
    const std::string arms = R"(
[[arms]]
name = "std"
data = [{ dataset = "A", n = 30 }]
probe = { guard_n = 4 }

[[arms]]
name = "gold"
data = [{ dataset = "A", n = 30 }]
train = { goldfish_k = 2, goldfish_h = 3 }
)";
    std::string text = tiny_config(dir, arms);
    text.replace(text.find("seed = 5"), 8, "seed = 5\nheld_out = 6");
    const StudyConfig c = parse(dir, text);
    ASSERT_EQ(c.arms.size(), 2u);
    EXPECT_EQ(c.held_out, 6);
    EXPECT_EQ(c.arms[0].guard_n, 4);
    EXPECT_EQ(c.arms[1].train.goldfish_k, 2);
    EXPECT_EQ(c.arms[1].train.goldfish_h, 3);
    StudyParams p;
    p.out_dir = dir + "/out";
    const StudySummary s = run_study(c, p);
    ASSERT_EQ(s.arms.size(), 2u);
    EXPECT_EQ(s.arms[0].mitigation, "decoding guard n = 4");
    EXPECT_EQ(s.arms[1].mitigation, "Goldfish loss k = 2, h = 3");
    ASSERT_EQ(s.arms[0].points.size(), 2u);
    for (const auto& a : s.arms)
        for (const auto& pt : a.points) {
            EXPECT_TRUE(std::isfinite(pt.held_out_loss)) << a.name << " epoch " << pt.epoch;
            EXPECT_EQ(pt.n_samples, 30);  // the held-out runs are not points of their own
        }
    const StudyPoint& g = s.arms[0].points.back();
    ASSERT_TRUE(g.guarded.has_value());
    EXPECT_TRUE(std::isfinite(g.guarded->mean_n_pre));
    ASSERT_TRUE(g.greedy.has_value());
    EXPECT_TRUE(std::isfinite(g.greedy->approx_share));
    // The guarded outputs never reproduce a training 4-gram, so no output
    // reaching 4 tokens of its reference: the guarded max n_pre is below 4.
    EXPECT_LT(g.guarded->max_n_pre, 4);
    EXPECT_FALSE(s.arms[1].points.back().guarded.has_value());
    // The guard's paired test and the held-out runs in the store.
    bool guard_cmp = false;
    for (const auto& r : s.comparisons) guard_cmp = guard_cmp || (r.a == "std (greedy)" && r.b == "std + guard");
    EXPECT_TRUE(guard_cmp);
    int held_out_runs = 0;
    for (const RunInfo& r : ResultReader::open(s.store_path).runs())
        held_out_runs += r.spec.options.value("run_label", "") == "gold/held-out";
    EXPECT_EQ(held_out_runs, 2);
    const std::string page = read_text_file(s.report_path);
    EXPECT_NE(page.find("id=\"table-mitigation\""), std::string::npos);
    EXPECT_NE(page.find("std + guard"), std::string::npos);
    EXPECT_TRUE(fs::exists(dir + "/out/arms/std/held-out.jsonl"));

    // Re-running skips everything (held-out runs included).
    const StudySummary again = run_study(c, p);
    EXPECT_EQ(again.arms[0].runs_probed, 0);
    EXPECT_EQ(again.arms[1].runs_probed, 0);

    // Errors name the key.
    std::string bad = text;
    bad.replace(bad.find("goldfish_k = 2"), 14, "goldfish_k = 1");
    EXPECT_NE(error_of<InvalidInput>([&] { parse(dir, bad); }).find("arms[1].train.goldfish_k"), std::string::npos);
    bad = text;
    bad.replace(bad.find("held_out = 6"), 12, "held_out = 20");
    const StudyConfig too_many = parse(dir, bad);
    StudyParams q;
    q.out_dir = dir + "/out-held";
    const std::string m = error_of<InvalidInput>([&] { run_study(too_many, q); });
    EXPECT_NE(m.find("study.held_out"), std::string::npos) << m;
}
