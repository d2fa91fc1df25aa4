// Open-addressing hash maps for the tokenizers' hot lookups (piece -> id,
// merge pair -> rank). std::unordered_map allocates a node per entry, so
// every lookup chases a pointer into cold memory; these keep entries in one
// array with linear probing, which matters at several lookups per input byte.
// Both are built once and then only read, so sharing them across threads is safe.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#define XXH_INLINE_ALL
#include <xxhash.h>

namespace memskew::detail {

inline uint64_t hash_bytes(std::string_view s) { return XXH3_64bits(s.data(), s.size()); }

// Smallest power of two >= 2 * n (load factor <= 0.5 keeps probes short).
inline size_t flat_capacity(size_t n) {
    size_t cap = 16;
    while (cap < 2 * n) cap *= 2;
    return cap;
}

// Piece -> token id, keyed by views into strings the caller keeps alive and
// unchanged (the Tokenizer's own Vocab). Later duplicates win, as in
// llama.cpp's token_to_id.
class PieceMap {
public:
    PieceMap() = default;
    explicit PieceMap(const std::vector<std::string>& pieces) {
        slots_.resize(flat_capacity(pieces.size()));
        mask_ = slots_.size() - 1;
        for (size_t i = 0; i < pieces.size(); ++i) {
            const std::string_view p(pieces[i]);
            const uint64_t h = hash_bytes(p);
            for (size_t k = h & mask_;; k = (k + 1) & mask_) {
                Slot& s = slots_[k];
                if (s.id < 0 || (s.hash == h && view(s) == p)) {
                    s = {h, p.data(), static_cast<uint32_t>(p.size()), static_cast<int32_t>(i)};
                    break;
                }
            }
        }
    }

    // The id of `piece`, or -1.
    int32_t find(std::string_view piece) const {
        if (slots_.empty()) return -1;
        const uint64_t h = hash_bytes(piece);
        for (size_t k = h & mask_;; k = (k + 1) & mask_) {
            const Slot& s = slots_[k];
            if (s.id < 0) return -1;
            if (s.hash == h && view(s) == piece) return s.id;
        }
    }

private:
    struct Slot {
        uint64_t hash = 0;
        const char* data = nullptr;
        uint32_t size = 0;
        int32_t id = -1;  // -1: empty
    };
    static std::string_view view(const Slot& s) { return {s.data, s.size}; }
    std::vector<Slot> slots_;
    size_t mask_ = 0;
};

// uint64 key -> value; the all-ones key is reserved as "empty".
template <typename Value>
class U64Map {
public:
    static constexpr uint64_t kEmpty = ~uint64_t{0};

    void reserve(size_t n) {
        slots_.assign(flat_capacity(n), Slot{kEmpty, Value{}});
        mask_ = slots_.size() - 1;
        shift_ = 64;
        for (size_t c = slots_.size(); c > 1; c >>= 1) --shift_;
    }
    // Inserts unless the key exists (the first value wins). reserve() first.
    void insert(uint64_t key, const Value& value) {
        for (size_t k = slot_of(key);; k = (k + 1) & mask_) {
            if (slots_[k].key == key) return;
            if (slots_[k].key == kEmpty) {
                slots_[k] = {key, value};
                return;
            }
        }
    }
    const Value* find(uint64_t key) const {
        if (slots_.empty()) return nullptr;
        for (size_t k = slot_of(key);; k = (k + 1) & mask_) {
            if (slots_[k].key == key) return &slots_[k].value;
            if (slots_[k].key == kEmpty) return nullptr;
        }
    }

private:
    struct Slot {
        uint64_t key;
        Value value;
    };
    // Fibonacci hashing: the pair keys are far from random in their low bits.
    size_t slot_of(uint64_t key) const { return static_cast<size_t>((key * 0x9E3779B97F4A7C15ull) >> shift_); }
    std::vector<Slot> slots_;
    size_t mask_ = 0;
    unsigned shift_ = 64;
};

}  // namespace memskew::detail
