// The host runner behind gpu/cs-cuda-emulate.h.
#include "cs-cuda-emulate.h"

#include <thread>
#include <vector>

thread_local CsEmuDim blockIdx, threadIdx;
CsEmuDim blockDim, gridDim;
thread_local std::barrier<> *cs_emu_barrier;
unsigned long cs_emu_launches;
cudaError_t cs_emu_error = cudaSuccess;

void
cs_emu_run (unsigned int grid, unsigned int block, bool synced, const std::function<void ()> &f)
{
  cs_emu_launches++;
  if (grid == 0 || grid > 2147483647u || block == 0 || block > 1024)
    {
      cs_emu_error = cudaErrorInvalidConfiguration;
      return;
    }
  blockDim = { block, 1, 1 };
  gridDim = { grid, 1, 1 };
  for (unsigned int b = 0; b < grid; b++)
    {
      if (!synced)
        {
          blockIdx = { b, 0, 0 };
          for (unsigned int t = 0; t < block; t++)
            {
              threadIdx = { t, 0, 0 };
              f ();
            }
          continue;
        }
      // The block's threads at once, meeting at its barrier.
      std::barrier<> bar (block);
      std::vector<std::thread> threads;
      for (unsigned int t = 0; t < block; t++)
        threads.emplace_back ([&, b, t] {
          blockIdx = { b, 0, 0 };
          threadIdx = { t, 0, 0 };
          cs_emu_barrier = &bar;
          f ();
        });
      for (auto &th : threads)
        th.join ();
    }
}
