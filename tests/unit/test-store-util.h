// Shared by the store tests: deterministic sample records and run specs.
#pragma once

#include <cmath>
#include <limits>
#include <random>
#include <string>

#include <fmt/format.h>

#include <gtest/gtest.h>
#include <sqlite3.h>

#include "memskew/store.h"

namespace memskew::test {

// The first column of the first row of `sql` on the file, read directly with
// SQLite (not through the store's readers); -1 when there is no row.
inline int64_t count_rows(const std::string& path, const std::string& sql) {
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
    sqlite3_stmt* st = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
    int64_t n = -1;
    if (sqlite3_step(st) == SQLITE_ROW) n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

inline RunSpec make_spec(std::optional<int64_t> step = 100) {
    RunSpec s;
    s.model_path = "/models/tiny.gguf";
    s.model_fingerprint = "size=1234,mtime=5678";
    s.adapter_path = "/ckpt/adapter";
    s.adapter_fingerprint = "abc123";
    s.checkpoint_step = step;
    s.checkpoint_epoch = 1;
    s.train_loss = 0.75;
    s.train_loss_last_step = 0.5;
    s.dataset_path = "/data/train.jsonl";
    s.dataset_hash = "d41d8cd9";
    s.options = {{"temperature", 1.0}, {"top_k", 0}, {"generate", true}};
    s.n_samples_planned = 100;
    return s;
}

// A sample with every kind of field; odd indexes are "generated".
inline SampleRecord make_record(int i, int L = 64) {
    std::mt19937 rng(static_cast<uint32_t>(i) * 7919u + 1u);
    std::uniform_real_distribution<float> u(-8.0f, 0.0f);
    SampleRecord r;
    r.sample_id = fmt::format("s{:05d}", i);
    r.sample_index = i;
    r.prompt_tokens = 10 + i % 7;
    r.reference_tokens = L;
    r.truncated = i % 11 == 0;
    r.prompt_text = fmt::format("prompt {}, with \"quotes\"\nand a newline, caf\xc3\xa9", i);
    r.reference_text = fmt::format("reference {}", i);
    const bool generated = i % 2 == 1;
    if (generated) r.generated_text = fmt::format("generated {}", i);

    StoredTokens t;
    const int n_pre = i % (L + 1);
    for (int j = 0; j < L; ++j) {
        const int32_t ref = static_cast<int32_t>(rng() % 32000);
        t.reference.push_back(ref);
        t.match.push_back(j < n_pre ? 1 : 0);
        t.argmax.push_back(j < n_pre ? ref : ref + 1);
        t.logprob.push_back(u(rng));
        t.rank.push_back(j < n_pre ? 1 : static_cast<int32_t>(2 + rng() % 100));
        t.entropy.push_back(-u(rng));
        if (i % 3 != 0) t.logprob_sampling.push_back(u(rng));
    }
    if (i % 5 == 0 && L > 0) t.logprob[0] = -std::numeric_limits<float>::infinity();
    if (generated) t.generated = std::vector<int32_t>(t.reference.begin(), t.reference.begin() + n_pre);
    r.tokens = t;

    MetricsRow& m = r.metrics;
    m.n_pre = n_pre;
    m.length = L;
    m.exact = n_pre == L;
    m.n_pre_frac = L ? double(n_pre) / L : 0.0;
    m.log_p_full_t1 = -3.5 * i;
    m.expected_n_pre_t1 = 0.1 * i;
    m.log_p_z = i % 5 == 0 ? -std::numeric_limits<double>::infinity() : -0.25 * i;
    m.expected_n_pre = 0.2 * i;
    m.log_p_extract_n = -0.01 * i;
    m.log_tries = 1.0 + i;
    if (L >= 5) m.log_p_ge_5 = -0.5;
    if (L >= 50) m.log_p_ge_50 = -5.0;
    m.loss = 1.0 / (1 + i);
    m.perplexity = std::exp(1.0 / (1 + i));
    m.min_k_prob = -2.0 - i;
    if (i % 3 != 0) m.min_k_plus_plus = -0.3;
    m.zlib_ratio = 0.001 * i;
    m.mean_entropy = 1.5;
    if (generated) {
        m.n_pre_generated = n_pre;
        m.gen_exact = n_pre == L;
        m.rouge1 = 0.5;
        m.rouge2 = 0.25;
        m.rouge_l = 0.4;
        m.lev_tokens = L - n_pre;
        m.lev_sim_tokens = L ? double(n_pre) / L : 1.0;
        m.lev_chars = 3;
        m.lev_sim_chars = 0.9;
        m.pythia_score = L ? double(n_pre) / L : 0.0;
        if (L >= 50) m.k_extractable = n_pre >= 50;
    }
    if (i % 4 == 0) m.extra = {{"custom_score", i * 0.5}, {"tag", "x"}};
    return r;
}

// Turns a store written now into what a schema-version-2 memskew wrote
// (before runs.train_loss_last_step), to test how old stores are read.
inline void downgrade_to_schema_2(const std::string& path) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    char* err = nullptr;
    ASSERT_EQ(sqlite3_exec(db,
                           "ALTER TABLE runs DROP COLUMN train_loss_last_step; PRAGMA user_version = 2; "
                           "UPDATE meta SET value = '2' WHERE key = 'schema_version';",
                           nullptr, nullptr, &err),
              SQLITE_OK)
        << (err ? err : "");
    sqlite3_close(db);
}

}  // namespace memskew::test
