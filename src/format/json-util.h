// Small helpers for reading JSON files with simdjson (config.json,
// tokenizer.json, safetensors headers): one wording for a value's type in
// error messages ("expected a string, found a list").
#pragma once

#include <simdjson.h>

namespace memskew::format {

inline const char* json_type_name(const simdjson::dom::element& e) {
    switch (e.type()) {
        case simdjson::dom::element_type::ARRAY: return "a list";
        case simdjson::dom::element_type::OBJECT: return "an object";
        case simdjson::dom::element_type::INT64:
        case simdjson::dom::element_type::UINT64: return "an integer";
        case simdjson::dom::element_type::DOUBLE: return "a number";
        case simdjson::dom::element_type::STRING: return "a string";
        case simdjson::dom::element_type::BOOL: return "a boolean";
        case simdjson::dom::element_type::NULL_VALUE: return "null";
    }
    return "an unknown value";
}

}  // namespace memskew::format
