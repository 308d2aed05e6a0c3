// The processes of one data-parallel training job. Started by a launcher (Open MPI's mpirun,
// MPICH's mpiexec, Slurm's srun), each process is one rank of an MPI world; started alone, it is
// the only rank and nothing here talks to anyone. MPI is chosen at build time: built without it,
// only the one-process world exists, and a launch of several processes is refused rather than run
// as independent copies writing the same output.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace zephyr {

class World {
 public:
  // The job's world; MPI starts on the first call when a launcher started this process.
  static World& get();
  ~World();  // MPI_Finalize
  World(const World&) = delete;
  World& operator=(const World&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  bool main() const { return rank_ == 0; }  // the rank that logs and writes files
  // "rank 1 of 2 (Open MPI v4.1.4)", or "one process" alone.
  std::string describe() const;

  // How long one collective may wait for the other ranks before this rank ends the job with an
  // error (transformers' ddp_timeout): a rank that died or hangs must not hang the rest.
  void set_timeout(double seconds) { timeout_s_ = seconds; }

  // In place: every rank ends with the element-wise sum over ranks.
  void sum(float* data, size_t n);
  void sum(double* data, size_t n);
  // In place: every rank ends with rank 0's values.
  void broadcast(float* data, size_t n);
  void broadcast(double* data, size_t n);
  void broadcast(int64_t* data, size_t n);
  // Every rank's `mine`, concatenated in rank order, on every rank.
  std::vector<double> gather(const std::vector<double>& mine);
  void barrier();

  // After an error on this rank: ends every rank of the job (the others would otherwise wait in
  // their next collective). Alone, or before any world was made, returns.
  static void end_job_after_error();

 private:
  World();
  double timeout_s_ = 1800;
  int rank_ = 0, size_ = 1;
  bool mpi_ = false;
};

// Whether this build can join an MPI world, and which MPI ("Open MPI v4.1.4", or "").
std::string mpi_library();

}  // namespace zephyr
