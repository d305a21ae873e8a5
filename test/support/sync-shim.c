/*
 * Preloaded into a process (LD_PRELOAD), watches and slows its syncs:
 *
 * - SYNC_LOG=FILE appends a line per fsync or fdatasync to FILE: the
 *   call's name and the path of the file or directory synced, so a test
 *   can tell which writes were put on disk, and when;
 * - SLOW_SYNC_US=N makes each one take N microseconds longer, as a flush
 *   to a network block volume does, so a bench on a local disk can see
 *   what the disk's latency does to the process.
 *
 *   cc -shared -fPIC -O2 -o sync-shim.so sync-shim.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void watch(const char *call, int fd) {
  const char *log = getenv("SYNC_LOG");
  if (log) {
    char link[64], target[PATH_MAX], line[PATH_MAX + 32];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, target, sizeof target - 1);
    target[n < 0 ? 0 : n] = '\0';
    int len = snprintf(line, sizeof line, "%s %s\n", call, target);
    int out = open(log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (out >= 0) {
      if (write(out, line, (size_t)len) < 0) {
      }
      close(out);
    }
  }
  const char *slow = getenv("SLOW_SYNC_US");
  long us = slow ? atol(slow) : 0;
  if (us <= 0) return;
  struct timespec left = {us / 1000000, (us % 1000000) * 1000};
  while (nanosleep(&left, &left) != 0) {
  }
}

int fsync(int fd) {
  static int (*real)(int);
  if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
  watch("fsync", fd);
  return real(fd);
}

int fdatasync(int fd) {
  static int (*real)(int);
  if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
  watch("fdatasync", fd);
  return real(fd);
}
