// Runs the CUDA backend's own kernels (gpu/cs-cuda-kernels.cu, built as C++ with
// CS_CUDA_EMULATE) on the host, one simulated thread after another, so that tests compare them
// with the CPU backend where there is no GPU. Only what those kernels use is here: 1-D grids and
// blocks, __shared__ memory and __syncthreads (a block whose kernel synchronises runs on real
// threads meeting at a barrier), and atomicAdd.
#pragma once

#include <cuda_runtime_api.h>  // cudaError_t, cudaStream_t: host types only

#include <algorithm>
#include <atomic>
#include <barrier>
#include <cmath>
#include <functional>

struct CsEmuDim {
  unsigned int x, y, z;
};

extern thread_local CsEmuDim blockIdx, threadIdx;
extern CsEmuDim blockDim, gridDim;
extern thread_local std::barrier<> *cs_emu_barrier;

#undef __global__
#undef __device__
#undef __shared__
#define __global__
#define __device__
#define __shared__ static  // blocks run one at a time: one copy serves each in turn
#define __syncthreads() cs_emu_barrier->arrive_and_wait ()

using std::max;
using std::min;

template <typename T>
static inline T
atomicAdd (T *p, T v)
{
  return std::atomic_ref<T> (*p).fetch_add (v);
}

// Runs F for every thread of GRID blocks of BLOCK threads. With SYNCED, the threads of a block
// run at once (F may call __syncthreads and share memory); otherwise one after another.
void cs_emu_run (unsigned int grid, unsigned int block, bool synced,
                 const std::function<void ()> &f);

// How many kernels were launched: a test can check that a call launched what it should.
extern unsigned long cs_emu_launches;

// A launch that a GPU would refuse (no blocks, more blocks than a 1-D grid takes, or more than
// 1,024 threads a block) runs nothing and is reported by the next cudaGetLastError, as on a GPU.
extern cudaError_t cs_emu_error;

static inline cudaError_t
cs_emu_get_last_error ()
{
  cudaError_t e = cs_emu_error;
  cs_emu_error = cudaSuccess;
  return e;
}

#define cudaGetLastError cs_emu_get_last_error
