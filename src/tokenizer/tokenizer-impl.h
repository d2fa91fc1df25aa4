// Private to src/tokenizer: the concrete tokenizers behind Tokenizer::from_vocab
// and helpers they share.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "memskew/tokenizer.h"
#include "tokenizer/flat-map.h"

namespace memskew::detail {

// Checks sizes and special ids; throws FormatError naming the field.
void validate_vocab(const Vocab& vocab);

// Throws InvalidInput for an id outside [0, n_vocab).
void check_id(int32_t id, int32_t n_vocab);

TokenType token_type(const Vocab& vocab, int32_t id);

struct WordHash {
    size_t operator()(const std::string& s) const { return static_cast<size_t>(hash_bytes(s)); }
};

// Ids of recently encoded words (pre-tokenizer pieces), shared by all threads
// using one tokenizer: natural text repeats the same words constantly, and a
// hit skips the whole merge loop. Bounded by dropping everything when full,
// which is cheap and keeps the frequent words (they come back at once).
class WordCache {
public:
    // Appends the cached ids of `word` to `out`; false when not cached.
    bool lookup(std::string_view word, std::vector<int32_t>& out) const {
        if (word.size() > kMaxWordBytes) return false;
        std::lock_guard<std::mutex> lock(mutex_);
        auto it = map_.find(std::string(word));
        if (it == map_.end()) return false;
        out.insert(out.end(), it->second.begin(), it->second.end());
        return true;
    }
    void store(std::string_view word, const int32_t* ids, size_t n_ids) const {
        if (word.size() > kMaxWordBytes) return;
        std::lock_guard<std::mutex> lock(mutex_);
        if (map_.size() >= kMaxEntries) map_.clear();
        if (map_.bucket_count() < kMaxEntries) map_.reserve(kMaxEntries);
        map_.emplace(std::string(word), std::vector<int32_t>(ids, ids + n_ids));
    }

private:
    // Enough for the frequent words of a corpus; larger tables cost more in
    // cache misses than the extra hits save.
    static constexpr size_t kMaxEntries = 1 << 16;
    static constexpr size_t kMaxWordBytes = 64;  // long runs are rare and would bloat the cache
    mutable std::mutex mutex_;
    mutable std::unordered_map<std::string, std::vector<int32_t>, WordHash> map_;
};

// Per-thread scratch buffers are reused across calls; after an unusually large
// input they are freed, so one huge document does not pin its memory forever.
template <typename Buffer>
void release_if_large(Buffer& buffer) {
    constexpr size_t kKeepBytes = size_t{1} << 22;
    if (buffer.capacity() * sizeof(buffer[0]) > kKeepBytes) Buffer().swap(buffer);
}

std::unique_ptr<Tokenizer> make_spm_tokenizer(Vocab vocab);
std::unique_ptr<Tokenizer> make_byte_bpe_tokenizer(Vocab vocab);

}  // namespace memskew::detail
