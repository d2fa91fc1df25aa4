// `memskew filter` (run_filter): which samples go, the manifest, the output
// in the input's format, and the refusals (store of another dataset, ids the
// dataset lacks, criteria without a store).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "memskew/error.h"
#include "memskew/file-io.h"
#include "memskew/filter.h"
#include "memskew/store-similarity.h"
#include "memskew/store.h"
#include "test-util.h"

using namespace memskew;

namespace {

std::string tmp(const std::string& name) { return memskew::test::temp_dir() + "/" + name; }

// Six question/answer records. q2 and q3 share a prompt with q1 but q3
// answers differently (q1, q2: "yes"; q3: "no"): q3 is the ambiguous one.
const char* kData =
    "{\"id\": \"q1\", \"question\": \"Is it red?\", \"answer\": \"yes\"}\n"
    "{\"id\": \"q2\", \"question\": \"Is it red?\", \"answer\": \"yes\"}\n"
    "\n"
    "{\"id\": \"q3\", \"question\": \"Is it red?\", \"answer\": \"no\"}\n"
    "{\"id\": \"q4\", \"question\": \"Name a bird.\", \"answer\": \"A robin.\"}\n"
    "{\"id\": \"q5\", \"question\": \"Name a fish.\", \"answer\": \"A trout.\"}\n"
    "{\"id\": \"q6\", \"question\": \"Name a tree.\", \"answer\": \"An oak.\"}\n";

std::string write_data(const std::string& name, const std::string& text = kData) {
    const std::string path = tmp(name);
    write_text_file_atomic(path, text);
    return path;
}

// A store of a probe of `data`: n_pre per id, and near-duplicate clusters
// {q1, q2, q4} (first: q1, index 0) and {q5, q6} (first: q5, index 4).
std::string write_store(const std::string& name, const std::string& data, bool with_similarity = true) {
    const std::string path = tmp(name);
    RunSpec spec;
    spec.model_path = "m";
    spec.model_fingerprint = "f";
    spec.dataset_path = data;
    spec.dataset_hash = file_content_hash(data);
    auto opened = open_run(path, spec, ResumeMode::kFresh);
    const std::vector<std::pair<std::string, int64_t>> n_pre = {{"q1", 3}, {"q2", 40}, {"q3", 0},
                                                                {"q4", 12}, {"q5", 50}, {"q6", 1}};
    int64_t index = 0;
    for (const auto& [id, n] : n_pre) {
        SampleRecord r;
        r.sample_id = id;
        r.sample_index = index++;
        r.metrics.n_pre = n;
        opened.writer.add(r);
    }
    opened.writer.finish();
    if (with_similarity) {
        RunSimilarity rs;
        rs.run_id = opened.run.run_id;
        rs.n_samples = 6;
        std::vector<SampleSimilarity> ss;
        const int64_t cluster[] = {0, 0, 2, 0, 4, 4}, size[] = {3, 3, 1, 3, 2, 2};
        for (int i = 0; i < 6; ++i) {
            SampleSimilarity s;
            s.sample_id = n_pre[static_cast<std::size_t>(i)].first;
            s.cluster = cluster[i];
            s.cluster_size = size[i];
            ss.push_back(s);
        }
        save_similarity(path, rs, ss);
    }
    return path;
}

std::vector<nlohmann::json> manifest_of(const std::string& path) {
    std::vector<nlohmann::json> out;
    std::istringstream in(read_text_file(path));
    for (std::string line; std::getline(in, line);) out.push_back(nlohmann::json::parse(line));
    return out;
}

}  // namespace

TEST(Filter, ClustersAndThresholdWithManifest) {
    const std::string data = write_data("f1.jsonl");
    FilterParams p;
    p.data_path = data;
    p.store_path = write_store("f1.db", data);
    p.out_path = tmp("f1.out.jsonl");
    p.max_per_cluster = 1;
    p.n_pre_at_least = 40;
    const FilterReport r = run_filter(p);
    // Clusters keep their first sample: q2, q4 (cluster of q1) and q6 (of q5)
    // go; n_pre >= 40: q2 (already going) and q5. Kept: q1, q3.
    EXPECT_EQ(r.n_records, 6u);
    EXPECT_EQ(r.n_written, 2u);
    EXPECT_EQ(r.n_removed, 4u);
    EXPECT_EQ(r.removed_ids, (std::vector<std::string>{"q2", "q4", "q5", "q6"}));
    // The kept lines, byte for byte (the blank line between records is not a record).
    EXPECT_EQ(read_text_file(p.out_path),
              "{\"id\": \"q1\", \"question\": \"Is it red?\", \"answer\": \"yes\"}\n"
              "{\"id\": \"q3\", \"question\": \"Is it red?\", \"answer\": \"no\"}\n");
    const auto m = manifest_of(r.manifest_path);
    ASSERT_EQ(m.size(), 4u);
    EXPECT_EQ(r.manifest_path, p.out_path + ".manifest.jsonl");
    // q2: the first reason found wins (n_pre is checked before clusters).
    EXPECT_EQ(m[0]["id"], "q2");
    EXPECT_EQ(m[0]["reason"], "n_pre");
    EXPECT_EQ(m[0]["n_pre"], 40);
    EXPECT_EQ(m[0]["line"], 2);
    EXPECT_EQ(m[1]["id"], "q4");
    EXPECT_EQ(m[1]["reason"], "near_duplicate");
    EXPECT_EQ(m[1]["kept"], "q1");
    EXPECT_EQ(m[1]["index"], 3);  // records are numbered without the blank line
    EXPECT_EQ(m[2]["reason"], "n_pre");
    EXPECT_EQ(m[3]["reason"], "near_duplicate");
    EXPECT_EQ(r.removed_by_reason.at("n_pre"), 2);
    EXPECT_EQ(r.removed_by_reason.at("near_duplicate"), 2);
}

TEST(Filter, MaxPerClusterTwoAndAmbiguousPrompts) {
    const std::string data = write_data("f2.jsonl");
    FilterParams p;
    p.data_path = data;
    p.store_path = write_store("f2.db", data);
    p.out_path = tmp("f2.out.jsonl");
    p.max_per_cluster = 2;
    p.drop_ambiguous = true;
    const FilterReport r = run_filter(p);
    // Cluster {q1, q2, q4} keeps two: q4 goes. Prompt "Is it red?": "yes" x2
    // is the majority, q3 ("no") goes.
    EXPECT_EQ(r.removed_ids, (std::vector<std::string>{"q3", "q4"}));
    EXPECT_EQ(r.removed_by_reason.at("ambiguous_prompt"), 1);
    const auto m = manifest_of(r.manifest_path);
    EXPECT_EQ(m[0]["prompt_mates"], 3);
    EXPECT_EQ(m[0]["majority_copies"], 2);
    // The output loads as the input minus those two.
    const Dataset out = load_dataset(p.out_path, {});
    std::vector<std::string> ids;
    for (const auto& s : out.samples) ids.push_back(s.id);
    EXPECT_EQ(ids, (std::vector<std::string>{"q1", "q2", "q5", "q6"}));
}

TEST(Filter, AmbiguousPromptsNeedNoStore) {
    const std::string data = write_data("f3.jsonl");
    FilterParams p;
    p.data_path = data;
    p.out_path = tmp("f3.out.jsonl");
    p.drop_ambiguous = true;
    const FilterReport r = run_filter(p);
    EXPECT_EQ(r.removed_ids, std::vector<std::string>{"q3"});
    EXPECT_EQ(r.run_id, 0);
}

TEST(Filter, Refusals) {
    const std::string data = write_data("f4.jsonl");
    const std::string store = write_store("f4.db", data);
    FilterParams p;
    p.data_path = data;
    p.out_path = tmp("f4.out.jsonl");
    test::expect_error<InvalidInput>([&] { run_filter(p); }, {"nothing to filter by"}, "--max-per-cluster");
    p.max_per_cluster = 1;
    test::expect_error<InvalidInput>([&] { run_filter(p); }, {"need the results store"}, "--store");

    // A store of another dataset: both names and both hashes.
    const std::string other = write_data("f4-other.jsonl", std::string(kData) + "{\"id\": \"q7\", \"question\": "
                                                                                 "\"x\", \"answer\": \"y\"}\n");
    p.data_path = other;
    p.store_path = store;
    test::expect_error<InvalidInput>([&] { run_filter(p); },
                                     {store, other, data, file_content_hash(data), file_content_hash(other)});

    // The same file read with other options: the ids differ (content hashes instead of the id field).
    p.data_path = data;
    p.data.id_field = "no_such_field";
    p.data.dedupe_ids = true;  // q1 and q2 have the same content
    test::expect_error<InvalidInput>([&] { run_filter(p); }, {"6 sample ids of", "are not in"}, "--id-field");
    p.data = {};

    // Clusters asked of a run without similarity figures.
    const std::string data5 = write_data("f5.jsonl");
    p.data_path = data5;
    p.store_path = write_store("f5.db", data5, /*with_similarity=*/false);
    test::expect_error<InvalidInput>([&] { run_filter(p); }, {"has no near-duplicate clusters"}, "probe");

    // Never over the input; nothing written on errors.
    p.store_path = store;
    p.data_path = data;
    p.out_path = data;
    test::expect_error<InvalidInput>([&] { run_filter(p); }, {data});
    EXPECT_EQ(read_text_file(data), kData);
    EXPECT_FALSE(std::filesystem::exists(data + ".manifest.jsonl"));
}
