// Typed errors for bad input. Each carries a message and an optional hint and
// gains context as it propagates ("error loading x.gguf: tensor 'y' ...").
// asserts are for programmer bugs only; everything a user can cause throws one
// of these, and the CLI maps them to documented exit codes.
#pragma once

#include <stdexcept>
#include <string>

namespace memskew {

// Exit codes of the CLI (documented in README.md).
enum class ExitCode : int {
    kOk = 0,
    kInternal = 1,   // a bug: unexpected exception
    kUsage = 2,      // bad command line
    kInvalidInput = 3,
    kFormat = 4,     // file content malformed or unsupported
    kIo = 5,         // missing/unreadable/unwritable file
};

class Error : public std::runtime_error {
public:
    Error(std::string message, std::string hint = {})
        : std::runtime_error(message), message_(std::move(message)), hint_(std::move(hint)) {}
    const std::string& message() const { return message_; }
    const std::string& hint() const { return hint_; }
    virtual ExitCode exit_code() const = 0;
    // Returns the same error type with "context: " prepended (used while unwinding).
    virtual void rethrow_with_context(const std::string& context) const = 0;

protected:
    std::string message_;
    std::string hint_;
};

#define MEMSKEW_DECLARE_ERROR(Name, code)                                                   \
    class Name : public Error {                                                             \
    public:                                                                                 \
        using Error::Error;                                                                 \
        ExitCode exit_code() const override { return code; }                                \
        [[noreturn]] void rethrow_with_context(const std::string& context) const override { \
            throw Name(context + ": " + message_, hint_);                                   \
        }                                                                                   \
    };

// Semantically wrong input: a value out of range, a prompt longer than the context.
MEMSKEW_DECLARE_ERROR(InvalidInput, ExitCode::kInvalidInput)
// A file's content is malformed, truncated, contradictory or of an unsupported kind.
MEMSKEW_DECLARE_ERROR(FormatError, ExitCode::kFormat)
// A file cannot be opened, read or written.
MEMSKEW_DECLARE_ERROR(IoError, ExitCode::kIo)

#undef MEMSKEW_DECLARE_ERROR

// Runs fn(); if it throws a memskew::Error, rethrows it with context prepended.
template <typename Fn>
auto with_context(const std::string& context, Fn&& fn) -> decltype(fn()) {
    try {
        return fn();
    } catch (const Error& e) {
        // Errors from lower layers often name the file already.
        if (e.message().compare(0, context.size(), context) == 0) throw;
        e.rethrow_with_context(context);
        throw;  // unreachable
    }
}

}  // namespace memskew
