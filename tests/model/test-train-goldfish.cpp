// Goldfish training (TrainParams::goldfish_k, src/train/trainer.cpp) on tiny
// random Llamas. Independent sources: the first step's loss against the mean
// of -log q over the kept tokens that Engine::score computes on the untrained
// model (LoRA's B starts at zero), with the mask rule written out here over
// XXH3_64bits; the realised drop fraction against Binomial(n, 1/K) bounds;
// "off is standard" as byte-identical checkpoint files.
#include <gtest/gtest.h>
#include <xxhash.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "memskew/engine.h"
#include "memskew/error.h"
#include "memskew/file-io.h"
#include "memskew/goldfish.h"
#include "memskew/tokenizer.h"
#include "memskew/train.h"
#include "memskew/trainer-state.h"
#include "test-util.h"

using namespace memskew;
using memskew::test::expect_error;
namespace fs = std::filesystem;

namespace {

std::shared_ptr<Model> tiny_model(uint64_t seed = 7) {
    return Model::random_llama(test::tiny_llama_config(128), make_byte_vocab(), seed, {}, 0.02);
}

std::string tiny_gguf() {
    const std::string path = test::temp_dir() + "/goldfish-tiny.gguf";
    if (!fs::exists(path)) tiny_model()->save_gguf(path);
    return path;
}

// n question/answer samples (byte tokens: prompt ~20, answer ~70).
std::string write_qa(int n) {
    static const char* colours[] = {"red", "green", "blue", "amber", "violet", "grey", "white", "black"};
    const std::string path = test::temp_dir() + fmt::format("/goldfish-qa-{}.jsonl", n);
    std::ofstream f(path);
    for (int i = 0; i < n; ++i)
        f << fmt::format(R"({{"id": "s{}", "question": "What is item {}?", "answer": "Item {} is {}, weighs {} g )"
                         R"(and was last seen on shelf {} next to item {}."}})",
                         i, i, i, colours[i % 8], 10 + 7 * i, 3 * i + 1, (i * 5) % 11)
          << "\n";
    return path;
}

TrainParams params(const std::string& data, const std::string& out) {
    TrainParams p;
    p.data_path = data;
    p.mode = TrainMode::kLora;
    p.lora.r = 4;
    p.lora.lora_alpha = 8;
    p.lora.lora_dropout = 0.1;  // exercises the RNG reseeding
    p.lora.target_modules = {"q_proj", "v_proj", "down_proj"};
    p.epochs = 2;
    p.batch_size = 4;
    p.lr = 5e-3;
    p.seed = 11;
    p.out_dir = out;
    return p;
}

std::map<std::string, std::string> files_of(const std::string& dir) {
    std::map<std::string, std::string> out;
    for (const auto& e : fs::directory_iterator(dir))
        if (e.is_regular_file()) out[e.path().filename().string()] = test::read_file(e.path().string());
    return out;
}

// The rule written out: drop r_j when j >= h - 1, h ids precede it, and
// XXH3_64bits of those ids (int32 little-endian) % k == 0.
bool dropped_by_rule(const std::vector<int32_t>& prompt, const std::vector<int32_t>& target, size_t j, int64_t k,
                     int64_t h) {
    std::vector<int32_t> s = prompt;
    s.insert(s.end(), target.begin(), target.end());
    const int64_t at = static_cast<int64_t>(prompt.size() + j);
    if (static_cast<int64_t>(j) < h - 1 || at < h) return false;
    std::vector<uint8_t> bytes;
    for (int64_t i = at - h; i < at; ++i)
        for (int sh = 0; sh < 32; sh += 8) bytes.push_back(static_cast<uint8_t>(static_cast<uint32_t>(s[i]) >> sh));
    return XXH3_64bits(bytes.data(), bytes.size()) % static_cast<uint64_t>(k) == 0;
}

}  // namespace

// K = 0 (the default) and K = 1 are standard training: the same losses and
// the same checkpoint files, byte for byte (weights, trainer_state.json,
// memskew-train.json, adapter_config.json). H is unused then. optimizer.pt is
// compared only when two standard runs write it byte-identically (a LibTorch
// archive may hold a per-save id).
TEST(GoldfishTrain, OffAndKOneLeaveTrainingUnchangedBitForBit) {
    const std::string base = tiny_gguf(), data = write_qa(14);
    struct Run {
        int64_t k, h;
    };
    std::vector<TrainSummary> summaries;
    std::vector<std::map<std::string, std::string>> files;
    int i = 0;
    for (const Run r : {Run{0, 13}, Run{1, 13}, Run{0, 5}}) {
        auto m = Model::load(base);
        TrainParams p = params(data, test::temp_dir() + fmt::format("/off-{}", i++));
        p.goldfish_k = r.k;
        p.goldfish_h = r.h;
        summaries.push_back(train_model(*m, p));
        files.push_back(files_of(summaries.back().last_checkpoint));
        EXPECT_EQ(summaries.back().goldfish.dropped, 0);
        EXPECT_FALSE(summaries.back().epochs.back().goldfish_drop_fraction.has_value());
    }
    {
        auto m = Model::load(base);
        TrainParams p = params(data, test::temp_dir() + "/off-again");
        const auto again = files_of(train_model(*m, p).last_checkpoint);
        EXPECT_TRUE(again.at("adapter_model.safetensors") == files[0].at("adapter_model.safetensors"));
        const bool same = again.at("optimizer.pt") == files[0].at("optimizer.pt");
        std::printf("optimizer.pt of two standard runs: %s\n", same ? "byte-identical, compared" : "differs, not compared");
        if (!same)
            for (auto& f : files) f.erase("optimizer.pt");
    }
    for (size_t r = 1; r < summaries.size(); ++r) {
        ASSERT_EQ(summaries[r].epochs.size(), summaries[0].epochs.size());
        for (size_t e = 0; e < summaries[0].epochs.size(); ++e)
            EXPECT_EQ(summaries[r].epochs[e].loss, summaries[0].epochs[e].loss) << "run " << r << " epoch " << e;
        ASSERT_EQ(files[r].size(), files[0].size());
        for (const auto& [name, bytes] : files[0]) {
            ASSERT_TRUE(files[r].count(name)) << name;
            EXPECT_TRUE(files[r].at(name) == bytes) << name << " differs in run " << r;
        }
    }
    EXPECT_TRUE(files[0].count("adapter_model.safetensors"));
    EXPECT_EQ(files[0].at("trainer_state.json").find("goldfish"), std::string::npos);
}

// The first step, on the untrained model (LoRA's B is zero, dropout off, one
// micro-batch of every sample): its loss is the mean of -log q_j over the
// tokens the rule keeps, EOS included (scored here as a reference token).
TEST(GoldfishTrain, FirstStepLossIsTheMeanOverKeptTokens) {
    const std::string base = tiny_gguf(), data = write_qa(12);
    const int64_t K = 4, H = 13;
    auto scorer = Model::load(base);
    TrainParams p = params(data, "");
    p.lora.lora_dropout = 0.0;
    p.batch_size = 12;
    p.epochs = 1;
    const EncodedDataset enc = encode_training_set(p, scorer->tokenizer(), scorer->config().max_ctx);
    ASSERT_EQ(enc.items.size(), 12u);
    std::vector<ScoreRequest> reqs;
    for (const auto& s : enc.items) {
        ASSERT_TRUE(s.eos);
        ScoreRequest r{s.prompt, s.reference};
        r.reference.push_back(scorer->tokenizer().eos());
        reqs.push_back(std::move(r));
    }
    Engine engine{std::shared_ptr<const Model>(scorer)};
    const auto scores = engine.score(reqs);
    double all = 0, kept = 0;
    int64_t n_all = 0, n_kept = 0, n_dropped_eos = 0;
    for (size_t i = 0; i < reqs.size(); ++i) {
        for (size_t j = 0; j < reqs[i].reference.size(); ++j) {
            const double nll = -static_cast<double>(scores[i].logprob[j]);
            all += nll;
            ++n_all;
            if (dropped_by_rule(reqs[i].prompt, reqs[i].reference, j, K, H)) {
                n_dropped_eos += j + 1 == reqs[i].reference.size();
                continue;
            }
            kept += nll;
            ++n_kept;
        }
    }
    std::printf("first step: standard mean NLL %.6f over %lld tokens; Goldfish K=4 %.6f over %lld kept (%lld EOS dropped)\n",
                all / n_all, static_cast<long long>(n_all), kept / n_kept, static_cast<long long>(n_kept),
                static_cast<long long>(n_dropped_eos));
    ASSERT_LT(n_kept, n_all);
    for (const int64_t k : {int64_t{0}, K}) {
        auto m = Model::load(base);
        TrainParams q = p;
        q.out_dir = test::temp_dir() + fmt::format("/first-step-{}", k);
        q.goldfish_k = k;
        q.goldfish_h = H;
        std::vector<double> losses;
        const auto s = train_model(*m, q, [&](const TrainProgress& pr) { losses.push_back(pr.loss); });
        ASSERT_FALSE(losses.empty());
        const double expected = k ? kept / n_kept : all / n_all;
        EXPECT_NEAR(losses[0], expected, 1e-5) << "k " << k;
        if (k) {
            EXPECT_EQ(s.goldfish.tokens, n_all);
            EXPECT_EQ(s.goldfish.dropped, n_all - n_kept);
        }
    }
}

// K = 4 drops about a quarter of the eligible tokens (a Binomial(n, 1/4)
// count, within 4.5 sigma), reports it per epoch, per step in
// trainer_state.json and for the run in memskew-train.json, and the loss is
// not the standard one.
TEST(GoldfishTrain, KFourReportsADropFractionNearAQuarter) {
    const std::string base = tiny_gguf(), data = write_qa(24);
    TrainSummary standard, goldfish;
    {
        auto m = Model::load(base);
        standard = train_model(*m, params(data, test::temp_dir() + "/k4-standard"));
    }
    TrainParams p = params(data, test::temp_dir() + "/k4");
    p.goldfish_k = 4;
    auto m = Model::load(base);
    goldfish = train_model(*m, p);
    const GoldfishCounts& c = goldfish.goldfish;
    const double n = static_cast<double>(c.eligible), sigma = std::sqrt(n * 0.25 * 0.75);
    std::printf("K=4, H=13: %lld of %lld eligible tokens dropped (%.4f; 0.25 +- %.4f at 4.5 sigma); %.4f of all %lld\n",
                static_cast<long long>(c.dropped), static_cast<long long>(c.eligible), c.drop_fraction_eligible(),
                4.5 * sigma / n, c.drop_fraction(), static_cast<long long>(c.tokens));
    EXPECT_GT(c.eligible, 1000);
    EXPECT_LE(std::fabs(c.dropped - 0.25 * n), 4.5 * sigma);
    ASSERT_EQ(goldfish.epochs.size(), 2u);
    for (const auto& e : goldfish.epochs) {
        // Every sample once per epoch: the epoch's fraction is the set's.
        ASSERT_TRUE(e.goldfish_drop_fraction.has_value());
        EXPECT_DOUBLE_EQ(*e.goldfish_drop_fraction, c.drop_fraction());
        EXPECT_DOUBLE_EQ(*e.goldfish_drop_fraction_eligible, c.drop_fraction_eligible());
    }
    for (size_t e = 0; e < 2; ++e) EXPECT_NE(goldfish.epochs[e].loss, standard.epochs[e].loss);

    const std::string ckpt = goldfish.last_checkpoint;
    const auto log = load_trainer_state(ckpt).log_history;
    ASSERT_EQ(log.size(), static_cast<size_t>(goldfish.steps));
    for (const auto& entry : log) {
        ASSERT_TRUE(entry.get("goldfish_drop_fraction").has_value()) << entry.step;
        EXPECT_GT(*entry.get("goldfish_drop_fraction"), 0.0);
        EXPECT_LT(*entry.get("goldfish_drop_fraction"), 0.5);
    }
    const auto state = nlohmann::json::parse(read_text_file(ckpt + "/memskew-train.json"));
    ASSERT_TRUE(state.contains("goldfish"));
    EXPECT_EQ(state["goldfish"]["k"], 4);
    EXPECT_EQ(state["goldfish"]["h"], 13);
    EXPECT_EQ(state["goldfish"]["hash"], kGoldfishHashRule);
    EXPECT_DOUBLE_EQ(state["goldfish"]["drop_fraction"].get<double>(), c.drop_fraction());
    EXPECT_EQ(state["goldfish"]["dropped_tokens"], c.dropped);
    // trainer_state.json stays within transformers' TrainerState keys.
    const auto ts = nlohmann::json::parse(read_text_file(ckpt + "/trainer_state.json"));
    EXPECT_FALSE(ts.contains("goldfish"));
}

// A resume keeps K and H: other values (or Goldfish on/off) are refused,
// naming both; the same values continue the uninterrupted run.
TEST(GoldfishTrain, ResumeKeepsKAndH) {
    const std::string base = tiny_gguf(), data = write_qa(14);
    TrainParams p = params(data, test::temp_dir() + "/resume");
    p.goldfish_k = 4;
    p.goldfish_h = 13;
    p.epochs = 2;
    // --epochs 1 then --resume --epochs 2 is the same run only for a schedule
    // that does not depend on the total number of steps.
    p.schedule = LrSchedule::kConstant;
    TrainSummary uninterrupted;
    {
        auto m = Model::load(base);
        TrainParams u = p;
        u.out_dir = test::temp_dir() + "/resume-uninterrupted";
        uninterrupted = train_model(*m, u);
    }
    p.epochs = 1;
    {
        auto m = Model::load(base);
        train_model(*m, p);
    }
    p.epochs = 2;
    p.resume = true;
    auto refused = [&](int64_t k, int64_t h, const std::vector<std::string>& fragments) {
        TrainParams q = p;
        q.goldfish_k = k;
        q.goldfish_h = h;
        auto m = Model::load(base);
        expect_error<InvalidInput>([&] { train_model(*m, q); }, fragments, "Goldfish settings");
    };
    refused(5, 13, {"cannot resume from", "checkpoint-4", "--goldfish-k 4 --goldfish-h 13", "--goldfish-k 5 --goldfish-h 13"});
    refused(4, 7, {"--goldfish-k 4 --goldfish-h 13", "--goldfish-k 4 --goldfish-h 7"});
    refused(0, 13, {"trained with --goldfish-k 4 --goldfish-h 13, this run asks for Goldfish off"});
    auto m = Model::load(base);
    const auto resumed = train_model(*m, p);
    ASSERT_EQ(resumed.epochs.size(), 1u);
    EXPECT_NEAR(resumed.epochs[0].loss, uninterrupted.epochs[1].loss, 1e-6);

    // A standard checkpoint (no goldfish settings stored) resumed with Goldfish.
    TrainParams s = params(data, test::temp_dir() + "/resume-standard");
    s.epochs = 1;
    {
        auto m2 = Model::load(base);
        train_model(*m2, s);
    }
    s.resume = true;
    s.epochs = 2;
    s.goldfish_k = 3;
    auto m3 = Model::load(base);
    expect_error<InvalidInput>([&] { train_model(*m3, s); },
                               {"trained with Goldfish off, this run asks for --goldfish-k 3 --goldfish-h 13"});
}

TEST(GoldfishTrain, BadValuesAreRefused) {
    const std::string data = write_qa(4);
    auto m = tiny_model();
    TrainParams p = params(data, test::temp_dir() + "/bad");
    p.goldfish_k = -2;
    expect_error<InvalidInput>([&] { train_model(*m, p); }, {"--goldfish-k must be at least 2", "got -2"});
    p.goldfish_k = 4;
    p.goldfish_h = 0;
    expect_error<InvalidInput>([&] { train_model(*m, p); }, {"--goldfish-h must be at least 1", "got 0"});
    EXPECT_FALSE(fs::exists(p.out_dir + "/checkpoint-1"));
}
