/* A stand-in for the NVIDIA driver's libcuda.so.1 on a machine without a GPU (tests only).
 * Like the real driver, cuInit opens the control device (here a stand-in node, CTL) and
 * keeps it open; it then reports that there is no device. Each call is noted in LOG with
 * the caller's pid, so a test can tell which process initialised "CUDA".
 * The other functions exist only because libcudart looks them up when it loads a driver. */
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

static void note(const char *what) {
    FILE *f = fopen(LOG, "a");
    if (f) { fprintf(f, "%d %s\n", (int)getpid(), what); fclose(f); }
}
int cuInit(unsigned int flags) { note("cuInit"); open(CTL, O_RDWR); return 100; /* NO_DEVICE */ }
int cuDriverGetVersion(int *v) { *v = 13020; return 0; }
int cuDeviceGetCount(int *n) { *n = 0; return 100; }
#define STUB(name) int name(void) { return 100; }
STUB(cuLinkCreate_v2) STUB(cuLinkAddData_v2) STUB(cuLinkComplete) STUB(cuModuleLoadData)
STUB(cuModuleUnload) STUB(cuGetErrorString) STUB(cuLinkDestroy) STUB(cuModuleGetFunction)
STUB(cuFuncSetAttribute) STUB(cuFuncGetAttribute) STUB(cuLaunchKernel) STUB(cuGetErrorName)
STUB(cuModuleLoadFatBinary) STUB(cuModuleLoadDataEx) STUB(cuLinkAddFile_v2) STUB(cuCtxPushCurrent)
STUB(cuCtxPopCurrent) STUB(cuCtxGetDevice) STUB(cuCtxGetLimit) STUB(cuDevicePrimaryCtxRetain)
STUB(cuDevicePrimaryCtxRelease) STUB(cuDevicePrimaryCtxReset) STUB(cuDeviceGet)
STUB(cuDeviceGetAttribute) STUB(cuStreamSynchronize) STUB(cuOccupancyMaxActiveBlocksPerMultiprocessor)
STUB(cuTensorMapEncodeTiled) STUB(cuLaunchKernelEx) STUB(cuMemcpyDtoH_v2) STUB(cuModuleGetGlobal_v2)
