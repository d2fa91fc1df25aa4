// memskew command-line entry point. Exit codes (see README.md):
//   0 success, 1 internal error, 2 usage error, 3 invalid input,
//   4 malformed/unsupported file, 5 file not found/unreadable/unwritable.
#include <spdlog/spdlog.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <iostream>

#include "cli.h"
#include "memskew/engine.h"
#include "memskew/error.h"


int main(int argc, char** argv) {
    using namespace memskew;
    ensure_passive_openmp(argc, argv);
    spdlog::set_level(spdlog::level::warn);
    CLI::App app{"memskew: how much a fine-tuned language model memorized its training data, and where"};
    app.require_subcommand(1);
    app.set_version_flag("--version", MEMSKEW_VERSION);
    cli::set_command_line(argc, argv);
    cli::Action action;
    cli::register_info(app, action);
    cli::register_tokenize(app, action);
    cli::register_generate(app, action);
    cli::register_score(app, action);
    cli::register_probe(app, action);
    cli::register_export(app, action);
    cli::register_merge(app, action);
    cli::register_filter(app, action);
    cli::register_train(app, action);
    cli::register_report(app, action);
    cli::register_analyze(app, action);
    cli::register_convert(app, action);
    cli::register_study(app, action);
    cli::register_demo(app, action);
    // Every command's --help ends with an example (tests/cli/help-examples.sh);
    // tokenize's is set here unless its registration sets one.
    if (CLI::App* tokenize = app.get_subcommand("tokenize"); tokenize->get_footer().empty())
        tokenize->footer("Example: memskew tokenize -m model.gguf --text \"Once upon a time\" --pieces");
    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForAllHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForVersion& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        app.exit(e);
        return static_cast<int>(ExitCode::kUsage);
    }
    // A rank of a job with several processes says which one it is (every
    // rank reports a job-wide failure; torchrun prefixes lines the same way).
    const std::string who = [] {
        const char* rank = std::getenv("RANK");
        const char* world = std::getenv("WORLD_SIZE");
        if (!rank || !world || std::string(world) == "1") return std::string("memskew");
        return std::string("memskew[rank ") + rank + "]";
    }();
    try {
        if (action) action();
    } catch (const cli::ExitStatus& e) {
        return e.code;
    } catch (const Error& e) {
        std::fflush(stdout);
        std::cerr << who << ": error: " << e.message() << "\n";
        if (!e.hint().empty()) std::cerr << "  hint: " << e.hint() << "\n";
        return static_cast<int>(e.exit_code());
    } catch (const std::bad_alloc&) {
        std::cerr << who << ": error: out of memory\n  hint: use a smaller batch or model\n";
        return static_cast<int>(ExitCode::kInternal);
    } catch (const std::exception& e) {
        std::cerr << who << ": internal error: " << e.what() << "\n"
                  << "  hint: this is a bug in memskew; please report it with the command line\n";
        return static_cast<int>(ExitCode::kInternal);
    }
    return 0;
}
