# Layer tests (src/nn): naive double-precision references, finite-difference
# gradients, hand-computed values. bench-layers is a timing program, not a test.
if(TARGET unet_nn)
  unet_add_test(NAME test_layers_conv SOURCES tests/test_layers_conv.c LIBS unet_nn TIMEOUT 120)
  unet_add_test(NAME test_layers_misc SOURCES tests/test_layers_misc.c LIBS unet_nn TIMEOUT 120)
  add_executable(bench-layers tests/bench_layers.c)
  target_link_libraries(bench-layers PRIVATE unet_nn)
endif()
# The convolutions' GEMMs (src/nn/gemm.c): both backends against a double
# reference; the backend chosen at load, by default and with UNET_GEMM set.
if(TARGET unet_nn)
  unet_add_test(NAME test_gemm SOURCES tests/test_gemm.c LIBS unet_nn TIMEOUT 120)
  add_test(NAME test_gemm_env_openblas COMMAND test_gemm openblas)
  set_tests_properties(test_gemm_env_openblas PROPERTIES TIMEOUT 120
    ENVIRONMENT "OPENBLAS_NUM_THREADS=1;UNET_GEMM=openblas;ASAN_OPTIONS=detect_leaks=0")
  add_test(NAME test_gemm_env_invalid COMMAND test_gemm)
  set_tests_properties(test_gemm_env_invalid PROPERTIES TIMEOUT 60
    ENVIRONMENT "UNET_GEMM=fast;ASAN_OPTIONS=detect_leaks=0"
    PASS_REGULAR_EXPRESSION "UNET_GEMM=fast: expected auto, avx512 or openblas")
endif()
