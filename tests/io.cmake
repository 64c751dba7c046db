# Weights file (Keras 3 .weights.h5 layout) and training checkpoint (src/io -> unet_io).
if(TARGET unet_io)
  unet_add_test(NAME test_checkpoint SOURCES tests/test_checkpoint.c LIBS unet_io TIMEOUT 120)
endif()
# Optional: the file tree checked with h5py against Keras 3's loading rules and the
# independent Python layer table (tests/torch_unet.py); skips without h5py.
if(TARGET unet_io AND EXISTS /usr/bin/python3)
  add_test(NAME test_keras_layout COMMAND /usr/bin/python3 ${CMAKE_SOURCE_DIR}/tests/keras_layout_check.py
           --run $<TARGET_FILE:test_checkpoint>)
  set_tests_properties(test_keras_layout PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 120
    ENVIRONMENT "OPENBLAS_NUM_THREADS=1;OMP_NUM_THREADS=1;ASAN_OPTIONS=detect_leaks=0")
endif()
# Checksummed data (Fletcher-32 shard chunks, CRC-32 of the weights arenas): flipped bytes are
# caught with the file and sample named; old shards and Keras-written files still load.
if(TARGET unet_io)
  unet_add_test(NAME test_integrity SOURCES tests/test_integrity.c LIBS unet_io unet_data m TIMEOUT 60)
endif()
