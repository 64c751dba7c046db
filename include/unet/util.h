/* util.h - checked allocation, error reporting, timing and atomic-output
 * helpers shared by every program. Nothing here knows about MPI or HDF5. */
#ifndef UNET_UTIL_H
#define UNET_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Longest path the programs handle, NUL included (Linux's PATH_MAX), and the
 * same path with the ".tmp.<pid>" of a write in progress. */
#define UNET_PATH_MAX 4096
#define UNET_TMP_PATH_MAX (UNET_PATH_MAX + 32)

/* Program name prefix for messages ("unet-train", "unet-preprocess", ...),
 * and an optional context such as "rank 3" that every message carries. */
void unet_set_progname(const char *name);
void unet_set_context(const char *context);

/* Print "prog[ context]: error: <msg>" to stderr. */
void unet_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void unet_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void unet_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Exit codes shared by every tool (README "Exit codes and usage errors"). */
#define UNET_EXIT_OK 0
#define UNET_EXIT_ERROR 1 /* bad input, I/O error, ...: the message names the file and cause */
#define UNET_EXIT_USAGE 2 /* a bad or missing command-line option: nothing was done */

/* A command-line mistake: prints "prog: error: <msg> (see prog --help)". */
void unet_usage_message(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void unet_usage_vmessage(const char *fmt, va_list ap);
/* unet_usage_message, then exit(UNET_EXIT_USAGE). */
void unet_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
/* For MPI programs: before_exit (e.g. MPI_Finalize) runs before a usage
 * error's exit, and quiet != 0 keeps this process from printing it (every
 * rank parses the same command line; rank 0 speaks for all). */
void unet_set_usage_exit(void (*before_exit)(void), int quiet);

/* unet_error, then run the registered fatal hook (e.g. MPI_Abort) or exit(1). */
void unet_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void unet_set_fatal_hook(void (*hook)(int code));

/* Allocation that never returns NULL: on failure it reports the size and
 * what it was for, then calls unet_fatal. Memory is 64-byte aligned. */
void *xmalloc(size_t bytes, const char *what);
void *xcalloc(size_t count, size_t size, const char *what);
char *xstrdup(const char *s);
void xfree(void *p); /* for xmalloc/xcalloc memory */
/* Calls of xmalloc (and so xcalloc, xstrdup) so far, from every thread: lets
 * a test check that a code path allocates nothing. */
size_t unet_alloc_count(void);

/* dst[i] = src[i]: 8-bit image values as the float 0..255 the network takes
 * (the Keras example feeds the uint8 resize as float). The one conversion,
 * for the loader, the trainer's PNGs and unet-predict. */
void unet_bytes_to_floats(float *dst, const uint8_t *src, size_t count);

double unet_now(void); /* monotonic seconds */
long unet_peak_rss_kb(void); /* peak resident set size of this process */

/* Write-then-rename: build "path.tmp.<pid>" in the same directory, let the
 * caller write it, then fsync and rename over path, so the old file (if any)
 * stays untouched until the new one is complete. unet_commit_file does not
 * remove the temporary on failure: the caller does (it knows whether it is
 * still open). */
void unet_tmp_path(char *out, size_t out_len, const char *path);
int unet_commit_file(const char *tmp_path, const char *final_path); /* fsync+rename+dir fsync; 0 ok */
/* The whole cycle for bytes in memory: path's temporary, written, committed;
 * on failure it is removed and err says "<file>: cannot create: ..." or
 * "<path>: write failed: ...". 0 ok, -1. */
int unet_write_file_atomic(const char *path, const void *data, size_t len, char *err, size_t err_len);
/* Removes dir/name.tmp.* : what a run killed during a write (kill -9, node
 * failure) leaves behind; the committed file is intact. */
void unet_remove_stale_tmp(const char *dir, const char *name);

int unet_mkdir_p(const char *dir); /* 0 ok, -1 with errno */
/* unet_mkdir_p for a program's output folder: the folders it creates are
 * remembered, and unet_remove_created_dirs() (called by unet_fatal, and safe
 * in a signal handler) removes those that are still empty, deepest first, so
 * a failed run leaves no empty output folder behind. */
int unet_mkdir_output(const char *dir);
void unet_remove_created_dirs(void);
/* 0 when dir exists as a writable folder or could be created (its nearest
 * existing ancestor is a writable folder); -1 with errno and the path at
 * fault in `where` otherwise. Creates nothing. */
int unet_check_output_dir(const char *dir, char *where, size_t where_len);
int unet_path_join(char *out, size_t out_len, const char *dir, const char *name); /* 0 ok, -1 too long */

/* Parse helpers for command lines: return 0 ok, -1 on a malformed value. */
int unet_parse_int(const char *s, long *out);
int unet_parse_double(const char *s, double *out);
/* "160" or "160x128" (HxW) */
int unet_parse_size(const char *s, int *h, int *w);

/* Progress line for long loops on stderr: "label done/total rate/s ETA". */
typedef struct {
  const char *label;
  long total;
  double start, last_print;
  int is_tty;
} UnetProgress;
void unet_progress_start(UnetProgress *p, const char *label, long total);
void unet_progress_update(UnetProgress *p, long done);
void unet_progress_end(UnetProgress *p, long done);

#endif
