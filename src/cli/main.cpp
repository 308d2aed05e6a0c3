// zephyr: one program for chat models — tokenize, template, and (as they land) run, train, serve.
#include <cblas.h>
#include <malloc.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <map>

#include "cli/commands.h"
#include "core/cpu_isa.h"
#include "core/error.h"
#include "core/huge_buffer.h"
#include "train/world.h"

int main(int argc, char** argv) {
  // Training streams gigabytes through its weights, gradients, optimizer state and activations
  // every step; with the heap in 2 MB pages the 56M bf16 SFT step ran 1.0-1.6% faster (three sets
  // of 6 alternated pairs, 14 of 18 faster; fp32 unchanged; peak RSS the same). glibc reads that
  // setting only at start.
  if (argc > 1)
    for (const char* trains : {"sft", "pretrain", "dpo", "recipe"})
      if (std::strcmp(argv[1], trains) == 0) zephyr::relaunch_with_huge_page_heap(argv);
  // Every training step and prompt allocates the same large scratch buffers again. glibc serves
  // blocks over 128 KB-32 MB with fresh mmaps and returns freed heap tops to the kernel, so each
  // step paid page faults and the kernel's zeroing of every page (SFT step 680 -> 850 tok/s
  // without). Keep them in the heap for reuse; peak memory is unchanged.
  mallopt(M_MMAP_THRESHOLD, 256 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  // A bad ZEPHYR_CPU_ISA is reported here, before a kernel (perhaps on a pool thread) reads it.
  std::string isa;
  try {
    isa = zephyr::cpu_isa_summary();
  } catch (const zephyr::Error& e) {
    std::cerr << "zephyr: error: " << e.what() << "\n";
    return 1;
  }
  CLI::App app{"zephyr.cpp — the Zephyr-7B chat-model system in one native program", "zephyr"};
  const std::string mpi = zephyr::mpi_library();
  app.set_version_flag("--version", std::string("zephyr ") + ZEPHYR_VERSION + "\ndata-parallel training: " +
                                        (mpi.empty() ? "one process (built without MPI)" : "MPI (" + mpi + ")") + "\n" + isa +
                                        "\nBLAS: OpenBLAS, " + openblas_get_corename() + " kernels");
  app.require_subcommand(1);
  std::map<CLI::App*, zephyr::cli::Run> runs;
  auto reg = [&](zephyr::cli::Run (*add)(CLI::App&)) {
    const size_t before = app.get_subcommands({}).size();
    auto run = add(app);
    runs[app.get_subcommands({})[before]] = std::move(run);
  };
  reg(zephyr::cli::add_tokenize);
  reg(zephyr::cli::add_detokenize);
  reg(zephyr::cli::add_template);
  reg(zephyr::cli::add_generate);
  reg(zephyr::cli::add_chat);
  reg(zephyr::cli::add_perplexity);
  reg(zephyr::cli::add_init);
  reg(zephyr::cli::add_bench);
  reg(zephyr::cli::add_export_gguf);
  reg(zephyr::cli::add_quantize);
  reg(zephyr::cli::add_export_hf);
  reg(zephyr::cli::add_merge);
  reg(zephyr::cli::add_serve);
  reg(zephyr::cli::add_feedback);
  reg(zephyr::cli::add_eval);
  reg(zephyr::cli::add_data);
  reg(zephyr::cli::add_recipe);
  reg(zephyr::cli::add_sft);
  reg(zephyr::cli::add_pretrain);
  reg(zephyr::cli::add_dpo);
  reg(zephyr::cli::add_debug);
  app.footer(
      "The whole recipe (dSFT, AI feedback, dDPO, evaluation) end to end: zephyr recipe run recipes/smol\n"
      "(make demo). README.md describes every command.");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::Success& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "zephyr: error: " << e.what() << " (see zephyr --help)\n";
    return e.get_exit_code() ? e.get_exit_code() : 1;
  }
  try {
    for (auto& [sub, run] : runs)
      if (sub->parsed()) {
        const int rc = run();
        // Output to stdout is buffered: a full disk or a closed file shows only when flushed, and
        // exit 0 with nothing written would hide it.
        std::cout.flush();
        if (std::fflush(stdout) != 0 || std::ferror(stdout) || !std::cout) {
          std::cerr << "zephyr: error: cannot write the output (stdout): " << std::strerror(errno ? errno : EIO) << "\n";
          return 1;
        }
        return rc;
      }
  } catch (const zephyr::Error& e) {
    std::fflush(stdout);
    std::cerr << "zephyr: error: " << e.what() << "\n";
    zephyr::World::end_job_after_error();
    return 1;
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::cerr << "zephyr: internal error: " << e.what() << "\n";
    zephyr::World::end_job_after_error();
    return 2;
  }
  return 0;
}
