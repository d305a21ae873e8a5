/*
 * Preloaded into a process (LD_PRELOAD), watches and slows its syncs:
 *
 * - SYNC_LOG=FILE appends a line per fsync or fdatasync to FILE: the
 *   call's name, `main` or `thread` (whether the process's main thread,
 *   Node's event loop, made it) and the path of the file or directory
 *   synced, so a test can tell which writes were put on disk, when, and
 *   whether the event loop waited for them;
 * - SLOW_SYNC_US=N makes each one take N microseconds longer, as a flush
 *   to a network block volume does, so a bench on a local disk can see
 *   what the disk's latency does to the process; with SLOW_SYNC_WHEN=FILE,
 *   only while FILE exists, with SLOW_SYNC_PATH=TEXT, only those of a
 *   path containing TEXT;
 * - FAIL_SYNC=TEXT makes the first one of a path containing TEXT fail
 *   with EIO, as a disk that could not write does (it is not made); with
 *   FAIL_SYNC_WHEN=FILE, only while FILE exists.
 *
 *   cc -shared -fPIC -O2 -o sync-shim.so sync-shim.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* Logs and slows one sync; nonzero when it is to fail. */
static int watch(const char *call, int fd) {
  static int failed;
  const char *log = getenv("SYNC_LOG");
  const char *fail = getenv("FAIL_SYNC");
  const char *slow_path = getenv("SLOW_SYNC_PATH");
  char target[PATH_MAX] = "";
  if (log || fail || slow_path) {
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, target, sizeof target - 1);
    target[n < 0 ? 0 : n] = '\0';
  }
  if (log) {
    char line[PATH_MAX + 32];
    const char *where = syscall(SYS_gettid) == getpid() ? "main" : "thread";
    int len = snprintf(line, sizeof line, "%s %s %s\n", call, where, target);
    int out = open(log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (out >= 0) {
      if (write(out, line, (size_t)len) < 0) {
      }
      close(out);
    }
  }
  const char *slow = getenv("SLOW_SYNC_US");
  const char *slow_when = getenv("SLOW_SYNC_WHEN");
  long us = slow && (!slow_when || access(slow_when, F_OK) == 0) &&
                    (!slow_path || strstr(target, slow_path))
                ? atol(slow)
                : 0;
  if (us > 0) {
    struct timespec left = {us / 1000000, (us % 1000000) * 1000};
    while (nanosleep(&left, &left) != 0) {
    }
  }
  const char *when = getenv("FAIL_SYNC_WHEN");
  if (fail && !failed && strstr(target, fail) &&
      (!when || access(when, F_OK) == 0)) {
    failed = 1;
    return 1;
  }
  return 0;
}

int fsync(int fd) {
  static int (*real)(int);
  if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
  if (watch("fsync", fd)) {
    errno = EIO;
    return -1;
  }
  return real(fd);
}

int fdatasync(int fd) {
  static int (*real)(int);
  if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
  if (watch("fdatasync", fd)) {
    errno = EIO;
    return -1;
  }
  return real(fd);
}
