// The CUDA backend's own kernels built for the host (see cs-cuda-emulate.h), for tests/.
#define CS_CUDA_EMULATE 1
#include "cs-cuda-kernels.cu"
