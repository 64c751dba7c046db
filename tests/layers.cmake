# Layer tests (src/nn): naive double-precision references, finite-difference
# gradients, hand-computed values. bench-layers is a timing program, not a test.
if(TARGET unet_nn)
  unet_add_test(NAME test_layers_conv SOURCES tests/test_layers_conv.c LIBS unet_nn TIMEOUT 120)
  unet_add_test(NAME test_layers_misc SOURCES tests/test_layers_misc.c LIBS unet_nn TIMEOUT 120)
  add_executable(bench-layers tests/bench_layers.c)
  target_link_libraries(bench-layers PRIVATE unet_nn)
endif()
