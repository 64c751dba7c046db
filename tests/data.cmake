# Tests of the data pipeline: the shard schema (unet_data) and the two tools
# unet-synth / unet-preprocess, driven as a user would run them.
unet_add_test(NAME test_shard SOURCES tests/test_shard.c LIBS unet_data TIMEOUT 60)

# The tools' tests need unet_image (decode/resize) to build the programs.
if(TARGET unet_image AND TARGET unet-preprocess AND TARGET unet-synth)
  foreach(part synth partition bad real)
    unet_add_test(NAME test_preprocess_${part} SOURCES tests/test_preprocess.c LIBS unet_image unet_data
                  ARGS ${part} TIMEOUT 120)
    add_dependencies(test_preprocess_${part} unet-preprocess unet-synth)
  endforeach()
endif()
# Augmentation (src/data/augment.c) and learning-rate schedules (src/train/lr_schedule.c).
unet_add_test(NAME test_augment SOURCES tests/test_augment.c src/train/lr_schedule.c LIBS unet_data m TIMEOUT 60)
# The prefetching batch reader; with LeakSanitizer on in the sanitizer pass.
unet_add_test(NAME test_prefetch SOURCES tests/test_prefetch.c src/train/data_loader.c LIBS unet_data TIMEOUT 60)
set_tests_properties(test_prefetch PROPERTIES ENVIRONMENT "ASAN_OPTIONS=detect_leaks=1")
