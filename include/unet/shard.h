/* shard.h - the HDF5 shard format written by unet-preprocess and read by the
 * trainer. One file holds N samples of one size:
 *   /images  uint8 [N,H,W,3]   chunked [1,H,W,3] (one image per chunk)
 *   /masks   uint8 [N,H,W]     chunked [1,H,W]   class ids 0..C-1
 *   /names   variable-length strings [N] (source file stem)
 * root attributes: height, width, num_classes (int32), mask_values (int32 [C],
 * the raw mask value of each class), seed (int64), tool_version (string),
 * kind ("train", "val" or "test"); optional: ignore_value (int32, the raw mask
 * value whose pixels are stored as class id SHARD_IGNORE_ID and count in no
 * loss or metric), mask_threshold (int32: class 1 = raw value >= T, 0 below).
 * Every chunk of /images and /masks carries HDF5's Fletcher-32 checksum
 * filter (after the optional deflate): a flipped bit fails the read of that
 * sample with a message naming the file and the sample index. Shards written
 * before the filter existed still load (with a note, once per process). */
#ifndef UNET_SHARD_H
#define UNET_SHARD_H
#include <stddef.h>
#include <stdint.h>

#define SHARD_MAX_CLASSES 256
#define SHARD_NAME_MAX 256 /* longest stored name, including the NUL */
#define SHARD_IGNORE_ID 255 /* class id of ignored pixels (in a file with has_ignore) */
#define SHARD_MAX_SIDE 16384 /* largest height or width the reader accepts */

typedef struct {
  int height, width, num_classes;
  int mask_values[SHARD_MAX_CLASSES]; /* raw value for each class id (thresholded: 0 and T) */
  int has_ignore, ignore_value;       /* ignore_value: raw value stored as SHARD_IGNORE_ID (else 255 is no id) */
  int has_threshold, mask_threshold;  /* binary masks thresholded at mask_threshold */
  int64_t seed;
  char kind[16];
  char tool_version[32];              /* filled by the reader; the writer stores UNET_VERSION */
  int deflate_level;                  /* writer only: 0 = no compression (default), 1..9 gzip */
} ShardInfo;

typedef struct ShardWriter ShardWriter;
/* Creates "<path>.tmp.<pid>"; samples are appended; shard_writer_close
 * commits it to <path> (fsync + rename). shard_writer_abort removes the
 * temporary. All return 0 ok / -1 with reason in err (naming the file). */
ShardWriter *shard_writer_open(const char *path, const ShardInfo *info, long capacity_hint, char *err, size_t err_len);
int shard_writer_append(ShardWriter *w, const uint8_t *image_hw3, const uint8_t *mask_hw, const char *name, char *err,
                        size_t err_len);
int shard_writer_close(ShardWriter *w, char *err, size_t err_len);
void shard_writer_abort(ShardWriter *w);

/* Two-phase commit, for writing a set of files that should appear together:
 * shard_writer_finish completes and closes the temporary (the writer stays
 * valid), shard_writer_commit renames it to <path> and frees the writer.
 * shard_writer_close == finish + commit. shard_writer_abort works at any
 * stage before commit. */
int shard_writer_finish(ShardWriter *w, char *err, size_t err_len);
int shard_writer_commit(ShardWriter *w, char *err, size_t err_len);
const char *shard_writer_tmp_path(const ShardWriter *w);
long shard_writer_count(const ShardWriter *w);

typedef struct ShardReader ShardReader;
/* 1 when the HDF5 library was built thread-safe (Debian's is): readers may
 * then be used from a thread other than the one that opened them. */
int shard_library_threadsafe(void);
/* Opens and validates the schema; on failure err names the file and the
 * dataset or attribute that is missing or wrong. */
ShardReader *shard_reader_open(const char *path, char *err, size_t err_len);
const ShardInfo *shard_reader_info(const ShardReader *r);
long shard_reader_count(const ShardReader *r);
/* 1 when the file's /images and /masks chunks carry Fletcher-32 checksums. */
int shard_reader_checksummed(const ShardReader *r);
/* Read sample i (one chunk each). image: H*W*3 bytes, mask: H*W bytes; name
 * may be NULL, else at least name_len bytes. Either of image/mask may be NULL
 * to skip it. */
int shard_reader_read(ShardReader *r, long i, uint8_t *image, uint8_t *mask, char *name, size_t name_len, char *err,
                      size_t err_len);
void shard_reader_close(ShardReader *r);

#endif
