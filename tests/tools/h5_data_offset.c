/* h5_data_offset.c - test helper: where a dataset's bytes lie in an HDF5 file,
 * so a test can flip bits in exactly one sample or one variable.
 *   h5-data-offset FILE DATASET [INDEX]
 * prints "<offset> <size>" in bytes: for a chunked dataset, the chunk that
 * holds element INDEX of dimension 0 (a shard's sample; default 0); for a
 * contiguous one (a weights variable), the whole data block.
 * Exit 0 ok, 2 with a message when the file or dataset is unreadable. */
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
  if (argc < 3 || argc > 4) {
    fprintf(stderr, "usage: h5-data-offset FILE DATASET [INDEX]\n");
    return 2;
  }
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  hid_t f = H5Fopen(argv[1], H5F_ACC_RDONLY, H5P_DEFAULT);
  hid_t d = f >= 0 ? H5Dopen2(f, argv[2], H5P_DEFAULT) : -1;
  if (d < 0) {
    fprintf(stderr, "h5-data-offset: cannot open %s in %s\n", argv[2], argv[1]);
    return 2;
  }
  hid_t dcpl = H5Dget_create_plist(d);
  int rc = 2;
  if (H5Pget_layout(dcpl) == H5D_CHUNKED) {
    hsize_t coord[8] = {0};
    coord[0] = argc == 4 ? strtoull(argv[3], NULL, 10) : 0;
    unsigned filter_mask = 0;
    haddr_t addr = HADDR_UNDEF;
    hsize_t size = 0;
    if (H5Dget_chunk_info_by_coord(d, coord, &filter_mask, &addr, &size) >= 0 && addr != HADDR_UNDEF) {
      printf("%llu %llu\n", (unsigned long long)addr, (unsigned long long)size);
      rc = 0;
    }
  } else {
    haddr_t addr = H5Dget_offset(d);
    hsize_t size = H5Dget_storage_size(d);
    if (addr != HADDR_UNDEF) {
      printf("%llu %llu\n", (unsigned long long)addr, (unsigned long long)size);
      rc = 0;
    }
  }
  if (rc) fprintf(stderr, "h5-data-offset: %s in %s has no stored data there\n", argv[2], argv[1]);
  H5Pclose(dcpl);
  H5Dclose(d);
  H5Fclose(f);
  return rc;
}
