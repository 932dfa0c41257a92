// LD_PRELOAD shim (slowsync.c's pattern, /work/shared/tools): counts every fsync/fdatasync of the
// process, any thread, and optionally adds SLOWSYNC_US microseconds to each (an SD card's flush).
// The process reads the count through the symbol swab_flushes() (ctypes.CDLL(None)).
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <unistd.h>
static long flushes;
long swab_flushes(void) { return __atomic_load_n(&flushes, __ATOMIC_SEQ_CST); }
static unsigned delay(void) { const char *s = getenv("SLOWSYNC_US"); return s ? (unsigned)atoi(s) : 0; }
int fsync(int fd) {
    static int (*real)(int);
    if (!real) real = dlsym(RTLD_NEXT, "fsync");
    __atomic_fetch_add(&flushes, 1, __ATOMIC_SEQ_CST);
    unsigned us = delay(); if (us) usleep(us);
    return real(fd);
}
int fdatasync(int fd) {
    static int (*real)(int);
    if (!real) real = dlsym(RTLD_NEXT, "fdatasync");
    __atomic_fetch_add(&flushes, 1, __ATOMIC_SEQ_CST);
    unsigned us = delay(); if (us) usleep(us);
    return real(fd);
}
