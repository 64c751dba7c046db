/* arena_crc.c - CRC-32 (zlib's crc32, the polynomial of gzip and PNG) of the
 * model's arenas as root attributes of trainer-written weights files and
 * checkpoints; see io_internal.h.
 *
 * The checksum covers the float32 arena exactly as the model holds it (the
 * project's variable order, little-endian IEEE bytes, as the file stores
 * them): the writer takes it from the arena it writes, the reader computes it
 * over the scratch arena it has just filled from the per-variable datasets,
 * so it checks the very values that would be loaded, whatever the order of
 * the datasets in the file. Keras writes no attributes: a file without one is
 * loaded unchecked. */
#include <stdint.h>
#include <zlib.h>

#include "io_internal.h"

uint32_t io_arena_crc32(const float *a, size_t n, uint32_t crc) {
  const unsigned char *p = (const unsigned char *)a;
  size_t bytes = n * sizeof(float);
  while (bytes > 0) { /* zlib's length is a uInt */
    uInt chunk = bytes > (1u << 30) ? (1u << 30) : (uInt)bytes;
    crc = (uint32_t)crc32(crc, p, chunk);
    p += chunk;
    bytes -= chunk;
  }
  return crc;
}

int io_write_crc_attr(hid_t file, const char *attr, uint32_t crc, const char *path, char *err, size_t err_len) {
  if (h5_write_attr(file, attr, H5T_STD_U32LE, H5T_NATIVE_UINT32, &crc, 0) != 0)
    return h5_fail(err, err_len, path, "cannot write the attribute %s", attr);
  return 0;
}

int io_verify_crc_attr(hid_t file, const char *attr, uint32_t computed, const char *what, const char *path,
                       char *err, size_t err_len) {
  if (H5Aexists(file, attr) <= 0) return 0; /* Keras-written (or older): nothing to check against */
  uint32_t stored = 0;
  if (h5_read_attr_ints(file, attr, H5T_NATIVE_UINT32, &stored, 0, path, err, err_len) != 0) return -1;
  if (stored == computed) return 0;
  return h5_fail(err, err_len, path,
                 "is corrupt: the %s read from it have CRC-32 0x%08x, but the file's %s says 0x%08x (the file "
                 "changed after it was written: disk, network or copy error); nothing was loaded: use another "
                 "copy or an earlier checkpoint",
                 what, (unsigned)computed, attr, (unsigned)stored);
}
