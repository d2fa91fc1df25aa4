// Issue 6, "how we will know it works": fine-tuning stories260K on 300 MedQuAD
// question/answer samples for several epochs lowers the training loss and
// raises n_pre on those samples epoch over epoch, while 100 held-out samples
// (not trained on) do not gain n_pre the same way. LoRA and full fine-tuning.
// Every checkpoint is probed as `memskew probe --adapter OUT` does it: the
// base model + the checkpoint's adapter (LoRA), or the checkpoint folder
// itself (full). Assertions are on directions, not exact values.
#include <gtest/gtest.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <numeric>

#include "memskew/adapter.h"
#include "memskew/data.h"
#include "memskew/probe.h"
#include "memskew/tokenizer.h"
#include "memskew/train.h"
#include "test-util.h"

using namespace memskew;

namespace {

constexpr int64_t kMaxRef = 48;

struct Split {
    std::string train, held;
};

// 400 records spread over the file (every 40th line): the first 300 train,
// the last 100 are held out. Only id, question and answer are kept.
Split write_split(const std::string& medquad) {
    std::ifstream in(medquad);
    std::string line;
    std::vector<std::string> picked;
    for (size_t i = 0; std::getline(in, line) && picked.size() < 400; ++i) {
        if (i % 40 != 0) continue;
        const auto j = nlohmann::json::parse(line);
        picked.push_back(nlohmann::json{{"id", j.at("id")}, {"question", j.at("question")}, {"answer", j.at("answer")}}.dump());
    }
    EXPECT_EQ(picked.size(), 400u);
    const std::string dir = test::temp_dir();
    Split s{dir + "/medquad-train.jsonl", dir + "/medquad-held.jsonl"};
    std::ofstream t(s.train), h(s.held);
    for (size_t i = 0; i < picked.size(); ++i) (i < 300 ? t : h) << picked[i] << "\n";
    return s;
}

// Score requests tokenized as the trainer tokenizes its samples (reference capped).
std::vector<ScoreRequest> requests(const Model& m, const std::string& path) {
    const Dataset ds = load_dataset(path);
    std::vector<ScoreRequest> out;
    for (const auto& s : ds.samples) {
        ScoreRequest r{m.tokenizer().encode(s.prompt, true), m.tokenizer().encode(s.reference, false)};
        if (static_cast<int64_t>(r.reference.size()) > kMaxRef) r.reference.resize(kMaxRef);
        out.push_back(std::move(r));
    }
    return out;
}

struct NPre {
    double mean = 0;
    int max = 0;
};

NPre n_pre(const Model& m, const std::vector<ScoreRequest>& reqs) {
    Engine e(std::shared_ptr<const Model>(std::shared_ptr<const Model>{}, &m));
    std::vector<int> v;
    for (size_t i = 0; i < reqs.size(); i += 50) {
        std::vector<ScoreRequest> b(reqs.begin() + i, reqs.begin() + std::min(reqs.size(), i + 50));
        for (const auto& s : e.score(b)) v.push_back(s.n_pre);
    }
    NPre r;
    r.mean = std::accumulate(v.begin(), v.end(), 0.0) / v.size();
    r.max = *std::max_element(v.begin(), v.end());
    return r;
}

void check_training(TrainMode mode) {
    MEMSKEW_REQUIRE_SHARED(base, "models/stories260K/stories260K.gguf");
    MEMSKEW_REQUIRE_SHARED(medquad, "data/medquad.jsonl");
    const Split split = write_split(medquad);
    const char* name = mode == TrainMode::kLora ? "lora" : "full";

    TrainParams p;
    p.data_path = split.train;
    p.max_reference_tokens = kMaxRef;
    p.mode = mode;
    p.lora.r = 16;
    p.lora.lora_alpha = 32;
    p.lora.lora_dropout = 0.0;
    p.lora.all_linear = true;
    p.epochs = 5;
    p.batch_size = 10;
    p.lr = mode == TrainMode::kLora ? 1e-2 : 3e-3;
    p.warmup_steps = 5;
    p.seed = 3;
    p.out_dir = test::temp_dir() + "/" + name;

    auto model = Model::load(base);
    const auto t0 = std::chrono::steady_clock::now();
    double tps = 0;
    const TrainSummary s = train_model(*model, p, [&](const TrainProgress& pr) { tps = pr.tokens_per_s; });
    const double train_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    ASSERT_EQ(s.n_samples, 300);
    ASSERT_EQ(static_cast<int64_t>(s.epochs.size()), p.epochs);

    // Probe the base and every checkpoint, as `memskew probe --adapter OUT` runs them.
    auto probe_base = Model::load(base);
    const auto train_reqs = requests(*probe_base, split.train), held_reqs = requests(*probe_base, split.held);
    ASSERT_EQ(train_reqs.size(), 300u);
    ASSERT_EQ(held_reqs.size(), 100u);
    std::vector<NPre> tr{n_pre(*probe_base, train_reqs)}, he{n_pre(*probe_base, held_reqs)};
    const auto targets = expand_probe_targets(base, {p.out_dir});
    ASSERT_EQ(targets.size(), static_cast<size_t>(p.epochs));
    for (const auto& t : targets) {
        if (!t.adapter_path.empty()) {
            load_adapter(*probe_base, t.adapter_path);
            tr.push_back(n_pre(*probe_base, train_reqs));
            he.push_back(n_pre(*probe_base, held_reqs));
            unload_adapter(*probe_base);
        } else {
            auto full = Model::load(t.model_path);
            tr.push_back(n_pre(*full, train_reqs));
            he.push_back(n_pre(*full, held_reqs));
        }
    }
    const double probe_s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() - train_s;

    std::printf("%s: %lld steps, %.1f s training (%.0f tokens/s), %.1f s probing\n", name,
                static_cast<long long>(s.steps), train_s, tps, probe_s);
    std::printf("  epoch  loss    trained: mean n_pre  max   held-out: mean n_pre  max\n");
    std::printf("  %5d  %-6s           %6.2f  %4d              %6.2f  %4d\n", 0, "-", tr[0].mean, tr[0].max,
                he[0].mean, he[0].max);
    for (size_t e = 0; e < s.epochs.size(); ++e)
        std::printf("  %5lld  %.4f           %6.2f  %4d              %6.2f  %4d\n",
                    static_cast<long long>(s.epochs[e].epoch), s.epochs[e].loss, tr[e + 1].mean, tr[e + 1].max,
                    he[e + 1].mean, he[e + 1].max);

    // The training loss falls epoch over epoch.
    for (size_t e = 1; e < s.epochs.size(); ++e) EXPECT_LT(s.epochs[e].loss, s.epochs[e - 1].loss) << "epoch " << e + 1;
    // n_pre on the trained samples rises: the first epoch above the base, the last above the
    // first (mean and max), and a positive trend over the epochs (least-squares slope of the
    // mean; single epochs may dip: n_pre is a step function of the logits).
    const size_t last = tr.size() - 1;
    EXPECT_GT(tr[1].mean, tr[0].mean);
    EXPECT_GT(tr[last].mean, tr[1].mean);
    EXPECT_GT(tr[last].max, tr[1].max);
    double sx = 0, sy = 0, sxx = 0, sxy = 0;
    for (size_t e = 1; e <= last; ++e) {
        sx += e, sy += tr[e].mean, sxx += double(e) * e, sxy += e * tr[e].mean;
    }
    const double k = static_cast<double>(last);
    const double slope = (k * sxy - sx * sy) / (k * sxx - sx * sx);
    std::printf("  trend of the trained mean n_pre over epochs 1..%zu: %+.2f per epoch\n", last, slope);
    EXPECT_GT(slope, 0.1);
    // Held-out samples do not gain the same way.
    const double gain_trained = tr[last].mean - tr[0].mean, gain_held = he[last].mean - he[0].mean;
    std::printf("  gain in mean n_pre (last epoch - base): trained %+.2f, held-out %+.2f\n", gain_trained, gain_held);
    EXPECT_GT(gain_trained, 2.0 * std::max(0.0, gain_held) + 1.0);
    EXPECT_GT(tr[last].mean, he[last].mean + 1.0);
}

}  // namespace

TEST(TrainStories, LoraRaisesNPreOnTrainedSamplesOnly) { check_training(TrainMode::kLora); }

TEST(TrainStories, FullFineTuningRaisesNPreOnTrainedSamplesOnly) { check_training(TrainMode::kFull); }
