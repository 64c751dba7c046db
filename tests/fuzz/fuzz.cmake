# libFuzzer harnesses (UNET_FUZZ=ON, CC=clang; the libraries are instrumented
# by the top-level CMakeLists). Run by jobs/run-tests.sh's fuzz pass; by hand:
#   build-fuzz/fuzz_image -max_total_time=60 CORPUS_COPY tests/fuzz/corpus/image
foreach(h image mask shard weights)
  add_executable(fuzz_${h} ${CMAKE_SOURCE_DIR}/tests/fuzz/fuzz_${h}.c)
  target_link_options(fuzz_${h} PRIVATE -fsanitize=fuzzer)
endforeach()
target_link_libraries(fuzz_image PRIVATE unet_image)
target_link_libraries(fuzz_mask PRIVATE unet_image unet_data)
target_link_libraries(fuzz_shard PRIVATE unet_data)
target_link_libraries(fuzz_weights PRIVATE unet_io)
# the seed corpus generator (tests/fuzz/corpus is its output)
add_executable(fuzz-make-seeds ${CMAKE_SOURCE_DIR}/tests/fuzz/make_seeds.c)
target_link_libraries(fuzz-make-seeds PRIVATE unet_image unet_data unet_io m)
add_custom_target(fuzz_all DEPENDS fuzz_image fuzz_mask fuzz_shard fuzz_weights fuzz-make-seeds)
