/* fuzz_file.h - the fuzz input as a file: the shard and weights readers take
 * a path (and check it with access(2) and H5Fis_hdf5 as users' files are),
 * so each input is written to one per-process file in /dev/shm (memory,
 * not disk) or TMPDIR. */
#ifndef UNET_FUZZ_FILE_H
#define UNET_FUZZ_FILE_H
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static const char *fuzz_write_input(const uint8_t *data, size_t size) {
  static char path[512];
  if (!path[0]) {
    const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(path, sizeof path, "%s/unet-fuzz-%d.h5", dir, (int)getpid());
  }
  FILE *f = fopen(path, "wb");
  if (!f) abort();
  if (size && fwrite(data, 1, size, f) != size) abort();
  if (fclose(f) != 0) abort();
  return path;
}

#endif
